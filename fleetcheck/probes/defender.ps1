function Get-FcDefender {
    param($P)
    $res = @{ available = $false; reason = $null; exclusion_path = @(); exclusion_process = @(); exclusion_extension = @(); realtime_disabled = $null }
    if ($null -eq (Get-Command -Name 'Get-MpPreference' -ErrorAction SilentlyContinue)) {
        $res['reason'] = 'Get-MpPreference not found'
        return $res
    }
    try {
        $mp = Get-MpPreference -ErrorAction Stop
    } catch {
        $res['reason'] = (Get-FcErrorInfo $_).message
        return $res
    }
    $res['available'] = $true
    $res['exclusion_path'] = @(@($mp.ExclusionPath) | Where-Object { $_ } | ForEach-Object { [string]$_ })
    $res['exclusion_process'] = @(@($mp.ExclusionProcess) | Where-Object { $_ } | ForEach-Object { [string]$_ })
    $res['exclusion_extension'] = @(@($mp.ExclusionExtension) | Where-Object { $_ } | ForEach-Object { [string]$_ })
    if ($null -ne $mp.DisableRealtimeMonitoring) { $res['realtime_disabled'] = [bool]$mp.DisableRealtimeMonitoring }
    return $res
}
