# Installs a Windows feature (no -Restart: RestartNeeded is reported, the host is never restarted).
function Invoke-FcFeature {
    param($P, [int]$TimeoutMs)
    $name = [string]$P.name
    $before = Get-WindowsFeature -Name $name -ErrorAction Stop
    if ($null -eq $before) {
        throw (New-Object System.ArgumentException ('no feature named ' + $name))
    }
    $state = [string]$before.InstallState
    if ($before.Installed) {
        return @{ changed = $false; before = $state; after = $state; detail = 'already installed' }
    }
    $r = Invoke-FcBounded -Command 'Install-WindowsFeature' -Parameters @{ Name = $name } -TimeoutMs $TimeoutMs
    if ($r.errors.Count -gt 0) { throw $r.errors[0].Exception }
    $res = @($r.output)[0]
    if ($null -eq $res -or -not $res.Success) {
        throw (New-Object System.InvalidOperationException ('Install-WindowsFeature did not succeed (exit code ' + [string]$res.ExitCode + ')'))
    }
    $after = [string](Get-WindowsFeature -Name $name -ErrorAction Stop).InstallState
    $restart = ([string]$res.RestartNeeded -eq 'Yes')
    return @{ changed = $true; restart_needed = $restart; before = $state; after = $after; detail = ('exit code ' + [string]$res.ExitCode) }
}
