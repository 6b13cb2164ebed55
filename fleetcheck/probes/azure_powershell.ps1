function Get-FcAzurePowershell {
    param($P)
    $mods = @()
    # Listing modules scans every PSModulePath folder: bound it.
    $names = [string[]]@('Az.Accounts', 'AzureRM', 'AzureRM.Profile', 'Azure')
    $r = Invoke-FcBounded -Command 'Get-Module' -Parameters @{ ListAvailable = $true; Name = $names } -TimeoutMs 60000
    foreach ($m in $r.output) {
        $mods += @{ name = [string]$m.Name; version = [string]$m.Version }
    }
    return @{ modules = $mods }
}
