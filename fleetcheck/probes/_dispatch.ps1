# Dispatcher: runs each requested probe in its own try/catch and prints ONE JSON document.
$fcArgs = ConvertFrom-Json -InputObject $ArgsJson
$fcOut = @{}
foreach ($fcP in @($fcArgs.probes.PSObject.Properties)) {
    $fcId = [string]$fcP.Name
    $fcSw = [System.Diagnostics.Stopwatch]::StartNew()
    $fcRes = @{}
    try {
        if (-not $fcTable.ContainsKey($fcId)) {
            throw (New-Object System.ArgumentException 'unknown probe')
        }
        $fcRes['data'] = & $fcTable[$fcId] $fcP.Value
    } catch {
        $fcRes['error'] = Get-FcErrorInfo $_
    }
    $fcRes['duration_ms'] = [int]$fcSw.ElapsedMilliseconds
    $fcOut[$fcId] = $fcRes
}
# Over PSRP the session's culture is the client's; the OS install language is what localized
# native text (vssadmin, w32tm, event messages) is printed in.
$fcUi = [System.Globalization.CultureInfo]::InstalledUICulture.Name
$fcHost = @{
    computer_name = [string]$env:COMPUTERNAME
    ps_version = $PSVersionTable.PSVersion.ToString()
    ps_edition = [string]$PSVersionTable.PSEdition
    culture = [System.Threading.Thread]::CurrentThread.CurrentCulture.Name
    ui_culture = $fcUi
    collected_at = [DateTime]::UtcNow.ToString('o', $fcInv)
}
if (-not $fcHost['ps_edition']) { $fcHost['ps_edition'] = 'Desktop' }
$fcDoc = @{ schema = 'fleetcheck/facts/v1'; host = $fcHost; probes = $fcOut }
Write-Output (ConvertTo-Json -InputObject $fcDoc -Compress -Depth 12)
