function Get-FcAzure {
    param($P)
    $enc = Get-CimInstance -ClassName Win32_SystemEnclosure -OperationTimeoutSec 60 -ErrorAction Stop | Select-Object -First 1
    $cs = Get-CimInstance -ClassName Win32_ComputerSystem -OperationTimeoutSec 60 -ErrorAction Stop
    $tag = $null
    if ($null -ne $enc -and $null -ne $enc.SMBIOSAssetTag) { $tag = ([string]$enc.SMBIOSAssetTag).Trim() }
    $agents = @()
    foreach ($svc in @('WindowsAzureGuestAgent', 'RdAgent')) {
        if ($null -ne (Get-Service -Name $svc -ErrorAction SilentlyContinue)) { $agents += $svc }
    }
    $res = @{
        smbios_asset_tag = $tag
        manufacturer = (Get-FcStr $cs.Manufacturer)
        model = (Get-FcStr $cs.Model)
        imds_reachable = $false
        imds_status = $null
        imds_error = $null
        guest_agent_services = $agents
    }
    # Instance metadata answers only inside an Azure VM; never through a proxy; short timeout.
    try {
        $req = [System.Net.WebRequest]::Create('http://169.254.169.254/metadata/instance/compute/azEnvironment?api-version=2021-02-01&format=text')
        $req.Proxy = $null
        $req.Timeout = [int]$P.imds_timeout_ms
        $req.Headers.Add('Metadata', 'true')
        $resp = $req.GetResponse()
        $res['imds_reachable'] = $true
        $res['imds_status'] = [int]$resp.StatusCode
        $resp.Close()
    } catch {
        $ex = $_.Exception
        if ($ex -is [System.Management.Automation.MethodInvocationException] -and $null -ne $ex.InnerException) { $ex = $ex.InnerException }
        if ($ex -is [System.Net.WebException] -and $null -ne $ex.Response) {
            $res['imds_reachable'] = $true
            $res['imds_status'] = [int]$ex.Response.StatusCode
        } elseif ($ex -is [System.Net.WebException]) {
            $res['imds_error'] = [string]$ex.Status
        } else {
            $res['imds_error'] = [string]$ex.GetType().Name
        }
    }
    return $res
}
