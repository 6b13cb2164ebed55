function Get-FcSocketError {
    param($Err)
    $ex = $Err
    if ($Err -is [System.Management.Automation.ErrorRecord]) { $ex = $Err.Exception }
    while ($null -ne $ex) {
        if ($ex -is [System.Net.Sockets.SocketException]) { return [string]$ex.SocketErrorCode }
        $ex = $ex.InnerException
    }
    return (Get-FcErrorInfo $Err).type
}

function Get-FcConnectivity {
    param($P)
    $timeout = [int]$P.timeout_ms
    $pending = @()
    # Start every connection first, then wait against one shared deadline.
    foreach ($e in @($P.endpoints)) {
        $entry = @{ host = [string]$e.host; port = [int]$e.port; tcp_ok = $false; error = $null; elapsed_ms = 0; client = $null; async = $null }
        $entry['sw'] = [System.Diagnostics.Stopwatch]::StartNew()
        try {
            $c = New-Object System.Net.Sockets.TcpClient
            $entry['client'] = $c
            $entry['async'] = $c.BeginConnect($entry['host'], $entry['port'], $null, $null)
        } catch {
            $entry['error'] = Get-FcSocketError $_
        }
        $pending += $entry
    }
    $deadline = [System.Diagnostics.Stopwatch]::StartNew()
    $results = @()
    foreach ($entry in $pending) {
        if ($null -ne $entry['async']) {
            $left = $timeout - [int]$deadline.ElapsedMilliseconds
            if ($left -lt 0) { $left = 0 }
            if ($entry['async'].AsyncWaitHandle.WaitOne($left)) {
                try {
                    $entry['client'].EndConnect($entry['async'])
                    $entry['tcp_ok'] = $true
                } catch {
                    $entry['error'] = Get-FcSocketError $_
                }
            } else {
                $entry['error'] = 'Timeout'
            }
        }
        $entry['elapsed_ms'] = [int]$entry['sw'].ElapsedMilliseconds
        if ($null -ne $entry['client']) {
            try { $entry['client'].Close() } catch { $entry['client'] = $null }
        }
        $results += @{ host = $entry['host']; port = $entry['port']; tcp_ok = $entry['tcp_ok']; error = $entry['error']; elapsed_ms = $entry['elapsed_ms'] }
    }
    return @{ results = $results }
}
