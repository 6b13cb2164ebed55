function Get-FcOs {
    param($P)
    $os = Get-CimInstance -ClassName Win32_OperatingSystem -OperationTimeoutSec 60 -ErrorAction Stop
    $cs = Get-CimInstance -ClassName Win32_ComputerSystem -OperationTimeoutSec 60 -ErrorAction Stop
    $cvPath = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $ubr = Get-FcRegValue $cvPath 'UBR'
    if ($null -ne $ubr) { $ubr = [int64]$ubr }
    $sku = $null
    if ($null -ne $os.OperatingSystemSKU) { $sku = [int]$os.OperatingSystemSKU }
    return @{
        caption = [string]$os.Caption
        version = [string]$os.Version
        build_number = [int]$os.BuildNumber
        ubr = $ubr
        product_type = [int]$os.ProductType
        installation_type = [string](Get-FcRegValue $cvPath 'InstallationType')
        edition_id = [string](Get-FcRegValue $cvPath 'EditionID')
        operating_system_sku = $sku
        architecture = [string]$os.OSArchitecture
        last_boot_utc = (ConvertTo-FcIso $os.LastBootUpTime)
        computer_name = [string]$env:COMPUTERNAME
        domain = [string]$cs.Domain
        part_of_domain = [bool]$cs.PartOfDomain
        ps_version = $PSVersionTable.PSVersion.ToString()
    }
}
