function Get-FcServices {
    param($P)
    $names = @(@($P.names) | ForEach-Object { [string]$_ })
    # Match by service name in PowerShell (never splice names into a WQL filter).
    $all = @{}
    foreach ($s in @(Get-CimInstance -ClassName Win32_Service -OperationTimeoutSec 60 -ErrorAction Stop)) { $all[[string]$s.Name] = $s }
    $list = @()
    foreach ($n in $names) {
        $s = $all[$n]
        if ($null -eq $s) {
            $list += @{ name = $n; present = $false; display_name = ''; state = ''; start_mode = ''; delayed_auto_start = $null; start_name = '' }
        } else {
            $delayed = $null
            if ($null -ne $s.DelayedAutoStart) { $delayed = [bool]$s.DelayedAutoStart }
            $list += @{
                name = $n
                present = $true
                display_name = [string]$s.DisplayName
                state = [string]$s.State
                start_mode = [string]$s.StartMode
                delayed_auto_start = $delayed
                start_name = [string]$s.StartName
            }
        }
    }
    return @{ services = $list }
}
