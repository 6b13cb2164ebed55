function Get-FcTime {
    param($P)
    $tz = [TimeZoneInfo]::Local
    $now = [DateTime]::UtcNow
    $res = @{
        utc_now = $now.ToString('o', $fcInv)
        timezone_id = [string]$tz.Id
        utc_offset_minutes = [int]$tz.GetUtcOffset($now).TotalMinutes
        w32tm_text = $null
        w32tm_exit_code = $null
        w32tm_error = $null
    }
    try {
        $n = Invoke-FcNative -CommandLine 'w32tm /query /status' -TimeoutMs ([int]$P.timeout_ms)
        $res['w32tm_text'] = $n.text
        $res['w32tm_exit_code'] = $n.exit_code
    } catch {
        $res['w32tm_error'] = Get-FcErrorInfo $_
    }
    return $res
}
