# Helpers shared by every probe: explicit, culture-free serialization and bounded calls.
$fcInv = [System.Globalization.CultureInfo]::InvariantCulture

function ConvertTo-FcIso {
    param($Value)
    if ($null -eq $Value) { return $null }
    $d = [datetime]$Value
    if ($d -eq [datetime]::MinValue) { return $null }
    return $d.ToUniversalTime().ToString('o', $fcInv)
}

function ConvertTo-FcUInt32 {
    param($Value)
    if ($null -eq $Value) { return 0 }
    $v = [int64]$Value
    if ($v -lt 0) { $v = $v + 4294967296 }
    return $v
}

function Get-FcStr {
    param($Value)
    if ($null -eq $Value) { return $null }
    return [string]$Value
}

function Limit-FcText {
    param($Text, [int]$Max)
    if ($null -eq $Text) { return $null }
    $s = [string]$Text
    if ($s.Length -gt $Max) { return $s.Substring(0, $Max) }
    return $s
}

function Get-FcErrorInfo {
    param($Err)
    $ex = $Err
    if ($Err -is [System.Management.Automation.ErrorRecord]) { $ex = $Err.Exception }
    if ($ex -is [System.Management.Automation.MethodInvocationException] -and $null -ne $ex.InnerException) {
        $ex = $ex.InnerException
    }
    $hr = $null
    try {
        if ($null -ne $ex.HResult) { $hr = ConvertTo-FcUInt32 $ex.HResult }
    } catch {
        $hr = $null
    }
    return @{ type = [string]$ex.GetType().Name; message = (Limit-FcText $ex.Message 1024); hresult = $hr }
}

function Get-FcRegValue {
    param([string]$Path, [string]$Name)
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}

# Runs one cmdlet in its own runspace so a slow or hung cmdlet cannot hold the whole bundle.
function Invoke-FcBounded {
    param([string]$Command, [hashtable]$Parameters, [int]$TimeoutMs)
    $ps = [powershell]::Create()
    [void]$ps.AddCommand($Command)
    foreach ($k in @($Parameters.Keys)) {
        [void]$ps.AddParameter($k, $Parameters[$k])
    }
    $handle = $ps.BeginInvoke()
    if (-not $handle.AsyncWaitHandle.WaitOne($TimeoutMs)) {
        [void]$ps.BeginStop($null, $null)
        throw (New-Object System.TimeoutException ($Command + ' did not finish within ' + $TimeoutMs + ' ms'))
    }
    $out = @($ps.EndInvoke($handle))
    $errs = @($ps.Streams.Error)
    $ps.Dispose()
    return @{ output = $out; errors = $errs }
}

# Runs a constant native command line through cmd.exe with the UTF-8 code page, bounded in time and size.
function Invoke-FcNative {
    param([string]$CommandLine, [int]$TimeoutMs)
    $max = 262144
    $utf8 = New-Object System.Text.UTF8Encoding $false
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = Join-Path ([Environment]::SystemDirectory) 'cmd.exe'
    $psi.Arguments = '/d /c chcp 65001 >nul & ' + $CommandLine
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.CreateNoWindow = $true
    $psi.StandardOutputEncoding = $utf8
    $psi.StandardErrorEncoding = $utf8
    $proc = [System.Diagnostics.Process]::Start($psi)
    $outTask = $proc.StandardOutput.ReadToEndAsync()
    $errTask = $proc.StandardError.ReadToEndAsync()
    if (-not $proc.WaitForExit($TimeoutMs)) {
        try { $proc.Kill() } catch { $proc = $proc }
        throw (New-Object System.TimeoutException ('native command did not finish within ' + $TimeoutMs + ' ms'))
    }
    $text = [string]$outTask.Result + [string]$errTask.Result
    $truncated = $false
    if ($text.Length -gt $max) {
        $text = $text.Substring(0, $max)
        $truncated = $true
    }
    return @{ text = $text; exit_code = [int]$proc.ExitCode; truncated = $truncated }
}
