function Get-FcMars {
    param($P)
    $base = 'HKLM:\SOFTWARE\Microsoft\Windows Azure Backup'
    $res = @{
        installed = $false
        install_path = $null
        cbengine_path = $null
        cbengine_present = $false
        agent_version = $null
        scratch_location_config = (Get-FcStr (Get-FcRegValue ($base + '\Config') 'ScratchLocation'))
        scratch_location_provider = (Get-FcStr (Get-FcRegValue ($base + '\Config\CloudBackupProvider') 'ScratchLocation'))
        services_present = @()
    }
    $present = @()
    foreach ($svc in @('obengine')) {
        if ($null -ne (Get-Service -Name $svc -ErrorAction SilentlyContinue)) { $present += $svc }
    }
    $res['services_present'] = $present
    $ip = Get-FcRegValue ($base + '\Setup') 'InstallPath'
    if ($ip) {
        $res['installed'] = $true
        $res['install_path'] = [string]$ip
        $exe = Join-Path ([string]$ip) 'bin\cbengine.exe'
        $res['cbengine_path'] = $exe
        if (Test-Path -LiteralPath $exe -PathType Leaf) {
            $res['cbengine_present'] = $true
            $vi = (Get-Item -LiteralPath $exe).VersionInfo
            $res['agent_version'] = ('{0}.{1}.{2}.{3}' -f $vi.FileMajorPart, $vi.FileMinorPart, $vi.FileBuildPart, $vi.FilePrivatePart)
        }
    }
    return $res
}
