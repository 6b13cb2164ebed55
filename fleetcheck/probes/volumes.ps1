function Get-FcVolumes {
    param($P)
    $list = @()
    foreach ($v in @(Get-CimInstance -ClassName Win32_Volume -OperationTimeoutSec 60 -ErrorAction Stop)) {
        $cap = $null
        if ($null -ne $v.Capacity) { $cap = [uint64]$v.Capacity }
        $free = $null
        if ($null -ne $v.FreeSpace) { $free = [uint64]$v.FreeSpace }
        $list += @{
            device_id = [string]$v.DeviceID
            drive_letter = (Get-FcStr $v.DriveLetter)
            name = [string]$v.Name
            label = (Get-FcStr $v.Label)
            file_system = (Get-FcStr $v.FileSystem)
            capacity = $cap
            free_space = $free
            drive_type = [int]$v.DriveType
            boot_volume = [bool]$v.BootVolume
            system_volume = [bool]$v.SystemVolume
        }
    }
    return @{ volumes = $list }
}
