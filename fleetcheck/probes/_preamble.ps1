param([string]$ArgsJson)
# PowerShell below 3.0 has no ConvertTo-Json: answer with a fixed, hand-built document.
# Every spliced value is an identifier (computer name, version digits, culture tag, ISO time).
if ($PSVersionTable.PSVersion.Major -lt 3) {
    $fcV = $PSVersionTable.PSVersion.ToString()
    $fcC = [System.Threading.Thread]::CurrentThread.CurrentCulture.Name
    $fcT = [DateTime]::UtcNow.ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
    Write-Output ('{"schema":"fleetcheck/facts/v1","unsupported":"PowerShell ' + $fcV + '","host":{"computer_name":"' + $env:COMPUTERNAME + '","ps_version":"' + $fcV + '","ps_edition":"Desktop","culture":"' + $fcC + '","ui_culture":"","collected_at":"' + $fcT + '"},"probes":{}}')
    return
}
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
    [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false
} catch {
    $fcIgnored = $_
}
