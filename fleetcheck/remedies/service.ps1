# Sets a service's start mode and, when asked, starts it and waits (bounded) until it runs.
function Get-FcServiceRow {
    param([string]$Name)
    foreach ($s in @(Get-CimInstance -ClassName Win32_Service -OperationTimeoutSec 60 -ErrorAction Stop)) {
        if ([string]$s.Name -eq $Name) { return $s }
    }
    throw (New-Object System.ArgumentException ('no service named ' + $Name))
}

function Invoke-FcService {
    param($P, [int]$TimeoutMs)
    $name = [string]$P.name
    $modes = @{ Automatic = 'Auto'; Manual = 'Manual'; Disabled = 'Disabled' }
    $row = Get-FcServiceRow $name
    $before = [string]$row.StartMode + ', ' + [string]$row.State
    $changed = $false
    $type = [string]$P.startup_type
    if ($type -and $modes.ContainsKey($type) -and [string]$row.StartMode -ne $modes[$type]) {
        Set-Service -Name $name -StartupType $type -ErrorAction Stop
        $changed = $true
    }
    if ($P.start -and [string]$row.State -ne 'Running') {
        $sc = Get-Service -Name $name -ErrorAction Stop
        if ($sc.Status -ne 'Running') {
            $sc.Start()
            $sc.WaitForStatus('Running', [TimeSpan]::FromMilliseconds($TimeoutMs))
            $changed = $true
        }
    }
    $row = Get-FcServiceRow $name
    $after = [string]$row.StartMode + ', ' + [string]$row.State
    return @{ changed = $changed; before = $before; after = $after }
}
