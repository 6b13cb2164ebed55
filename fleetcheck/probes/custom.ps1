function Get-FcCustom {
    param($P)
    # A user's script arrives as data in the JSON argument; its printed text is parsed as JSON locally.
    $results = @{}
    foreach ($c in @($P.scripts)) {
        $id = [string]$c.id
        try {
            $sb = [scriptblock]::Create([string]$c.script)
            $text = (& $sb | Out-String)
            $results[$id] = @{ output = (Limit-FcText $text.Trim() 16384); error = $null }
        } catch {
            $results[$id] = @{ output = $null; error = (Get-FcErrorInfo $_) }
        }
    }
    return @{ results = $results }
}
