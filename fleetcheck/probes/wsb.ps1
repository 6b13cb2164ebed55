function Get-FcWsb {
    param($P)
    $t = [int]$P.timeout_ms
    $res = @{ cmdlets_available = $false; cmdlets_error = $null; last_job = $null; last_job_error = $null; summary = $null }
    if ($null -eq (Get-Command -Name 'Get-WBJob' -ErrorAction SilentlyContinue)) {
        $res['cmdlets_error'] = @{ type = 'CommandNotFoundException'; message = 'Get-WBJob is not recognized'; hresult = $null }
        return $res
    }
    try {
        $r = Invoke-FcBounded -Command 'Get-WBJob' -Parameters @{ Previous = 1 } -TimeoutMs $t
    } catch {
        $res['cmdlets_error'] = Get-FcErrorInfo $_
        return $res
    }
    if ($r.output.Count -eq 0 -and $r.errors.Count -gt 0) {
        $e = Get-FcErrorInfo $r.errors[0]
        if ($e.type -eq 'CommandNotFoundException' -or $e.type -eq 'FileNotFoundException') {
            $res['cmdlets_error'] = $e
            return $res
        }
        $res['last_job_error'] = $e
    }
    $res['cmdlets_available'] = $true
    $job = $r.output | Select-Object -First 1
    if ($null -ne $job) {
        $res['last_job'] = @{
            job_type = [string]$job.JobType
            job_state = [string]$job.JobState
            start_time = (ConvertTo-FcIso $job.StartTime)
            end_time = (ConvertTo-FcIso $job.EndTime)
            hresult = (ConvertTo-FcUInt32 $job.HResult)
            detailed_hresult = (ConvertTo-FcUInt32 $job.DetailedHResult)
            error_description = (Limit-FcText ([string]$job.ErrorDescription) 1024)
        }
    }
    try {
        $s = Invoke-FcBounded -Command 'Get-WBSummary' -Parameters @{} -TimeoutMs $t
        $sum = $s.output | Select-Object -First 1
        if ($null -ne $sum) {
            $res['summary'] = @{
                last_backup_time = (ConvertTo-FcIso $sum.LastBackupTime)
                last_successful_backup_time = (ConvertTo-FcIso $sum.LastSuccessfulBackupTime)
                next_backup_time = (ConvertTo-FcIso $sum.NextBackupTime)
                number_of_versions = [int]$sum.NumberOfVersions
                last_backup_result_hr = (ConvertTo-FcUInt32 $sum.LastBackupResultHR)
                last_backup_result_detailed_hr = (ConvertTo-FcUInt32 $sum.LastBackupResultDetailedHR)
                current_operation_status = [string]$sum.CurrentOperationStatus
            }
        }
    } catch {
        $res['summary'] = $null
    }
    return $res
}
