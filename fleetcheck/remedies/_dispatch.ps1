# Dispatcher: applies each change in order, each in its own try/catch, and prints ONE JSON document.
# One failing change never stops the others; nothing here restarts the host.
$fcArgs = ConvertFrom-Json -InputObject $ArgsJson
$fcTimeoutMs = [int]$fcArgs.timeout_s * 1000
if ($fcTimeoutMs -lt 1000) { $fcTimeoutMs = 60000 }
$fcResults = @()
foreach ($fcC in @($fcArgs.changes)) {
    $fcAction = [string]$fcC.action
    $fcSw = [System.Diagnostics.Stopwatch]::StartNew()
    $fcRes = @{ check = [string]$fcC.check; action = $fcAction; changed = $false; restart_needed = $false; before = $null; after = $null; detail = ''; error = $null }
    try {
        if (-not $fcTable.ContainsKey($fcAction)) {
            throw (New-Object System.ArgumentException 'unknown remedy action')
        }
        $fcOut = & $fcTable[$fcAction] $fcC.params $fcTimeoutMs
        foreach ($fcK in @('changed', 'restart_needed', 'before', 'after', 'detail')) {
            if ($fcOut.ContainsKey($fcK)) { $fcRes[$fcK] = $fcOut[$fcK] }
        }
    } catch {
        $fcRes['error'] = Get-FcErrorInfo $_
    }
    $fcRes['duration_ms'] = [int]$fcSw.ElapsedMilliseconds
    $fcResults += $fcRes
}
$fcDoc = @{
    schema = 'fleetcheck/remedy/v1'
    host = @{ computer_name = [string]$env:COMPUTERNAME; ps_version = $PSVersionTable.PSVersion.ToString() }
    results = $fcResults
}
Write-Output (ConvertTo-Json -InputObject $fcDoc -Compress -Depth 8)
