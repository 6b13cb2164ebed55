function Get-FcDotnet {
    param($P)
    $key = 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full'
    $release = Get-FcRegValue $key 'Release'
    if ($null -ne $release) { $release = [int64]$release }
    return @{ release = $release; version = (Get-FcStr (Get-FcRegValue $key 'Version')) }
}
