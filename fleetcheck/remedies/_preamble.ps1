param([string]$ArgsJson)
# PowerShell below 3.0 has no ConvertFrom-Json: change nothing and say why, in a fixed document.
if ($PSVersionTable.PSVersion.Major -lt 3) {
    Write-Output ('{"schema":"fleetcheck/remedy/v1","unsupported":"PowerShell ' + $PSVersionTable.PSVersion.ToString() + '","results":[]}')
    return
}
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false
} catch {
    $fcIgnored = $_
}

# Runs a program with constant arguments (never built from data), bounded in time and size.
function Invoke-FcProgram {
    param([string]$Program, [string]$Arguments, [int]$TimeoutMs)
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = Join-Path ([Environment]::SystemDirectory) $Program
    $psi.Arguments = $Arguments
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.CreateNoWindow = $true
    $proc = [System.Diagnostics.Process]::Start($psi)
    $outTask = $proc.StandardOutput.ReadToEndAsync()
    $errTask = $proc.StandardError.ReadToEndAsync()
    if (-not $proc.WaitForExit($TimeoutMs)) {
        try { $proc.Kill() } catch { $proc = $proc }
        throw (New-Object System.TimeoutException ($Program + ' did not finish within ' + $TimeoutMs + ' ms'))
    }
    $text = ([string]$outTask.Result + [string]$errTask.Result).Trim()
    if ($text.Length -gt 4096) { $text = $text.Substring(0, 4096) }
    return @{ text = $text; exit_code = [int]$proc.ExitCode }
}
