function ConvertTo-FcHotfixDate {
    param([string]$Raw)
    if (-not $Raw) { return $null }
    $d = [datetime]::MinValue
    $formats = [string[]]@('M/d/yyyy', 'MM/dd/yyyy', 'yyyyMMdd', 'M/d/yyyy h:mm:ss tt')
    if ([datetime]::TryParseExact($Raw, $formats, $fcInv, [System.Globalization.DateTimeStyles]::None, [ref]$d)) {
        return $d.ToString('yyyy-MM-dd', $fcInv)
    }
    if ($Raw -match '^[0-9a-fA-F]{16}$') {
        return [datetime]::FromFileTimeUtc([Convert]::ToInt64($Raw, 16)).ToString('yyyy-MM-dd', $fcInv)
    }
    return $null
}

function Get-FcUpdates {
    param($P)
    $hotfixes = @()
    foreach ($h in @(Get-CimInstance -ClassName Win32_QuickFixEngineering -OperationTimeoutSec 60 -ErrorAction Stop | Select-Object -First 500)) {
        $raw = [string]$h.InstalledOn
        $hotfixes += @{ id = [string]$h.HotFixID; installed_on = (ConvertTo-FcHotfixDate $raw); installed_on_raw = $raw }
    }
    $cv = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion'
    $pfr = @(Get-FcRegValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' 'PendingFileRenameOperations')
    $reboot = @{
        cbs = [bool](Test-Path -LiteralPath ($cv + '\Component Based Servicing\RebootPending'))
        windows_update = [bool](Test-Path -LiteralPath ($cv + '\WindowsUpdate\Auto Update\RebootRequired'))
        pending_file_rename = (@($pfr | Where-Object { $_ }).Count -gt 0)
    }
    return @{ hotfixes = $hotfixes; reboot_pending = $reboot }
}
