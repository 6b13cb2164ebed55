# Sets the shadow storage limit of one volume (Win32_ShadowStorage.MaxSpace), never below the space in use.
function Get-FcShadowRow {
    param([string]$Volume)
    foreach ($s in @(Get-CimInstance -ClassName Win32_ShadowStorage -OperationTimeoutSec 60 -ErrorAction Stop)) {
        if ([string]$s.Volume.DeviceID -eq $Volume) { return $s }
    }
    throw (New-Object System.ArgumentException ('no shadow storage association for ' + $Volume))
}

function Invoke-FcShadowStorage {
    param($P, [int]$TimeoutMs)
    $row = Get-FcShadowRow ([string]$P.volume)
    $want = [uint64]$P.max_bytes
    $used = [uint64]$row.UsedSpace
    $before = [string]$row.MaxSpace
    if ([uint64]$row.MaxSpace -eq $want) {
        return @{ changed = $false; before = $before; after = $before; detail = 'limit already set' }
    }
    if ($want -lt $used) {
        throw (New-Object System.InvalidOperationException ('refused: ' + [string]$want + ' bytes is below the ' + [string]$used + ' bytes in use'))
    }
    Set-CimInstance -InputObject $row -Property @{ MaxSpace = $want } -OperationTimeoutSec 60 -ErrorAction Stop
    $after = [string](Get-FcShadowRow ([string]$P.volume)).MaxSpace
    return @{ changed = $true; before = $before; after = $after }
}
