function Get-FcShadowStorage {
    param($P)
    try {
        $list = @()
        foreach ($s in @(Get-CimInstance -ClassName Win32_ShadowStorage -OperationTimeoutSec 60 -ErrorAction Stop)) {
            $list += @{
                volume_device_id = [string]$s.Volume.DeviceID
                diff_volume_device_id = [string]$s.DiffVolume.DeviceID
                used_bytes = [uint64]$s.UsedSpace
                allocated_bytes = [uint64]$s.AllocatedSpace
                max_bytes = [uint64]$s.MaxSpace
            }
        }
        return @{ source = 'cim'; storages = $list; cim_error = $null; vssadmin_text = $null; vssadmin_exit_code = $null }
    } catch {
        $cimError = Get-FcErrorInfo $_
    }
    # Fallback only: localized text, parsed by numbers and GUIDs on our side.
    $n = Invoke-FcNative -CommandLine 'vssadmin list shadowstorage' -TimeoutMs ([int]$P.timeout_ms)
    return @{ source = 'vssadmin'; storages = @(); cim_error = $cimError; vssadmin_text = $n.text; vssadmin_exit_code = $n.exit_code }
}
