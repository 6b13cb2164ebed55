# Adds Defender exclusions, only those not present yet (paths and processes arrive as data).
function Invoke-FcDefender {
    param($P, [int]$TimeoutMs)
    $pref = Get-MpPreference -ErrorAction Stop
    $havePaths = @($pref.ExclusionPath | Where-Object { $_ })
    $haveProcs = @($pref.ExclusionProcess | Where-Object { $_ })
    $addPaths = @(@($P.paths) | ForEach-Object { [string]$_ } | Where-Object { $_ -and $havePaths -notcontains $_ })
    $addProcs = @(@($P.processes) | ForEach-Object { [string]$_ } | Where-Object { $_ -and $haveProcs -notcontains $_ })
    $before = [string]$havePaths.Count + ' path(s), ' + [string]$haveProcs.Count + ' process(es) excluded'
    if ($addPaths.Count -gt 0) { Add-MpPreference -ExclusionPath $addPaths -ErrorAction Stop }
    if ($addProcs.Count -gt 0) { Add-MpPreference -ExclusionProcess $addProcs -ErrorAction Stop }
    $pref = Get-MpPreference -ErrorAction Stop
    $after = [string]@($pref.ExclusionPath | Where-Object { $_ }).Count + ' path(s), ' + [string]@($pref.ExclusionProcess | Where-Object { $_ }).Count + ' process(es) excluded'
    return @{ changed = ($addPaths.Count + $addProcs.Count) -gt 0; before = $before; after = $after }
}
