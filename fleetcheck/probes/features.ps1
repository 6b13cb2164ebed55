function Get-FcFeatures {
    param($P)
    $names = @(@($P.names) | ForEach-Object { [string]$_ })
    if ($null -eq (Get-Module -ListAvailable -Name ServerManager)) {
        return @{ module_available = $false; features = @() }
    }
    # Get-WindowsFeature can take minutes on a fresh host: bound it.
    $r = Invoke-FcBounded -Command 'Get-WindowsFeature' -Parameters @{ Name = $names } -TimeoutMs ([int]$P.timeout_ms)
    if ($r.output.Count -eq 0 -and $r.errors.Count -gt 0) { throw $r.errors[0].Exception }
    $found = @{}
    foreach ($f in $r.output) { $found[[string]$f.Name] = $f }
    $list = @()
    foreach ($n in $names) {
        $f = $found[$n]
        if ($null -eq $f) {
            $list += @{ name = $n; install_state = 'NotFound'; installed = $false; display_name = '' }
        } else {
            $list += @{
                name = $n
                install_state = [string]$f.InstallState
                installed = [bool]$f.Installed
                display_name = [string]$f.DisplayName
            }
        }
    }
    return @{ module_available = $true; features = $list }
}
