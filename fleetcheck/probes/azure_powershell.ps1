function Get-FcAzurePowershell {
    param($P)
    $mods = @()
    foreach ($m in @(Get-Module -ListAvailable -Name 'Az.Accounts', 'AzureRM', 'AzureRM.Profile', 'Azure')) {
        $mods += @{ name = [string]$m.Name; version = [string]$m.Version }
    }
    return @{ modules = $mods }
}
