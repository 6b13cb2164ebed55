function Get-FcEvents {
    param($P)
    $maxMsg = [int]$P.message_max_chars
    $left = [int]$P.max_total
    $results = @()
    foreach ($q in @($P.queries)) {
        $ids = @(@($q.ids) | Where-Object { $null -ne $_ } | ForEach-Object { [int]$_ })
        $r = @{ log = [string]$q.log; provider = (Get-FcStr $q.provider); ids = $ids; entries = @(); error = $null }
        $filter = @{ LogName = [string]$q.log; StartTime = (Get-Date).AddHours(0 - [int]$q.since_hours) }
        if ($q.provider) { $filter['ProviderName'] = [string]$q.provider }
        if ($ids.Count -gt 0) { $filter['Id'] = [int[]]$ids }
        $max = [int]$q.max
        if ($max -gt $left) { $max = $left }
        try {
            $entries = @()
            if ($max -lt 1) { throw (New-Object System.InvalidOperationException 'event budget of this bundle is used up') }
            foreach ($e in @(Get-WinEvent -FilterHashtable $filter -MaxEvents $max -ErrorAction Stop)) {
                $msg = ''
                try { $msg = Limit-FcText $e.Message $maxMsg } catch { $msg = '' }
                $props = @(@($e.Properties) | Select-Object -First 8 | ForEach-Object { Limit-FcText ([string]$_.Value) 256 })
                $entries += @{
                    log = [string]$e.LogName
                    provider = [string]$e.ProviderName
                    id = [int]$e.Id
                    level = [int]$e.Level
                    time_created = (ConvertTo-FcIso $e.TimeCreated)
                    record_id = [int64]$e.RecordId
                    message = [string]$msg
                    properties = $props
                }
            }
            $r['entries'] = $entries
            $left = $left - $entries.Count
        } catch {
            # "No events match" (or an unregistered provider: it never wrote any) is an answer,
            # not an error; a missing log gets a stable type name.
            $fqid = [string]$_.FullyQualifiedErrorId
            if ($fqid -like 'NoMatchingLogsFound*') {
                $r['error'] = @{ type = 'LogNotFound'; message = (Limit-FcText $_.Exception.Message 1024); hresult = $null }
            } elseif ($fqid -notlike 'NoMatchingEventsFound*' -and $fqid -notlike 'NoMatchingProvidersFound*') {
                $r['error'] = Get-FcErrorInfo $_
            }
        }
        $results += $r
    }
    return @{ results = $results }
}
