# Resynchronizes Windows Time; sets the NTP peer list first only when one is given (as registry data).
function Invoke-FcClock {
    param($P, [int]$TimeoutMs)
    $before = (Invoke-FcProgram 'w32tm.exe' '/query /source' $TimeoutMs).text
    $changed = $false
    $peers = [string]$P.time_source
    if ($peers) {
        $key = 'HKLM:\SYSTEM\CurrentControlSet\Services\W32Time\Parameters'
        $old = Get-ItemProperty -LiteralPath $key -ErrorAction Stop
        if ([string]$old.NtpServer -ne $peers -or [string]$old.Type -ne 'NTP') {
            Set-ItemProperty -LiteralPath $key -Name 'NtpServer' -Value $peers -ErrorAction Stop
            Set-ItemProperty -LiteralPath $key -Name 'Type' -Value 'NTP' -ErrorAction Stop
            $cfg = Invoke-FcProgram 'w32tm.exe' '/config /update' $TimeoutMs
            if ($cfg.exit_code -ne 0) {
                throw (New-Object System.InvalidOperationException ('w32tm /config /update failed: ' + $cfg.text))
            }
            $changed = $true
        }
    }
    $svc = Get-Service -Name 'W32Time' -ErrorAction Stop
    if ($svc.Status -ne 'Running') {
        $svc.Start()
        $svc.WaitForStatus('Running', [TimeSpan]::FromMilliseconds($TimeoutMs))
        $changed = $true
    }
    $sync = Invoke-FcProgram 'w32tm.exe' '/resync /rediscover' $TimeoutMs
    if ($sync.exit_code -ne 0) {
        throw (New-Object System.InvalidOperationException ('w32tm /resync failed: ' + $sync.text))
    }
    $after = (Invoke-FcProgram 'w32tm.exe' '/query /source' $TimeoutMs).text
    return @{ changed = $changed; before = $before; after = $after; detail = 'resynchronized' }
}
