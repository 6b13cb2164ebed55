function Get-FcVssWriters {
    param($P)
    # Writer names and states are printed in the host's language: return the text, parse it locally.
    return (Invoke-FcNative -CommandLine 'vssadmin list writers' -TimeoutMs ([int]$P.timeout_ms))
}
