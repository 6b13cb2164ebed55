function Get-FcScheduledTasks {
    param($P)
    $policy = @{}
    foreach ($e in @(Get-ExecutionPolicy -List)) { $policy[[string]$e.Scope] = [string]$e.ExecutionPolicy }
    $policy['Effective'] = [string](Get-ExecutionPolicy)
    $res = @{ module_available = $true; tasks = @(); execution_policy = $policy }
    if ($null -eq (Get-Command -Name 'Get-ScheduledTask' -ErrorAction SilentlyContinue)) {
        $res['module_available'] = $false
        return $res
    }
    $sidType = [System.Security.Principal.SecurityIdentifier]
    $tasks = @()
    foreach ($t in @(Get-ScheduledTask -TaskPath ([string]$P.task_path) -ErrorAction SilentlyContinue)) {
        $uid = [string]$t.Principal.UserId
        if (-not $uid) { $uid = [string]$t.Principal.GroupId }
        $sid = $null
        if ($uid -match '^S-1-') {
            $sid = $uid
        } elseif ($uid) {
            try {
                $sid = (New-Object System.Security.Principal.NTAccount $uid).Translate($sidType).Value
            } catch {
                $sid = $null
            }
        }
        $tasks += @{
            path = [string]$t.TaskPath
            name = [string]$t.TaskName
            state = [string]$t.State
            enabled = [bool]$t.Settings.Enabled
            user_id = $uid
            user_sid = $sid
            logon_type = [string]$t.Principal.LogonType
            run_level = [string]$t.Principal.RunLevel
        }
    }
    $res['tasks'] = $tasks
    return $res
}
