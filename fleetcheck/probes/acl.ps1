function Get-FcAcl {
    param($P)
    $paths = @(@($P.paths) | Where-Object { $_ } | ForEach-Object { [string]$_ })
    $isDefault = $false
    if ($paths.Count -eq 0) {
        $paths = @([string]$env:SystemDrive + '\System Volume Information')
        $isDefault = $true
    }
    $sidType = [System.Security.Principal.SecurityIdentifier]
    $items = @()
    foreach ($path in $paths) {
        $item = @{ path = $path; default_path = $isDefault; exists = $true; sddl = $null; owner_sid = $null; aces = @(); error = $null }
        try {
            $acl = Get-Acl -LiteralPath $path -ErrorAction Stop
            $item['sddl'] = [string]$acl.Sddl
            $owner = $acl.GetOwner($sidType)
            if ($null -ne $owner) { $item['owner_sid'] = [string]$owner.Value }
            $aces = @()
            foreach ($rule in @($acl.GetAccessRules($true, $true, $sidType))) {
                $prop = [int]$rule.PropagationFlags.value__
                $inh = [int]$rule.InheritanceFlags.value__
                $aces += @{
                    sid = [string]$rule.IdentityReference.Value
                    rights = (ConvertTo-FcUInt32 $rule.FileSystemRights.value__)
                    type = [string]$rule.AccessControlType
                    inherited = [bool]$rule.IsInherited
                    inherit_only = (($prop -band 2) -ne 0)
                    object_inherit = (($inh -band 2) -ne 0)
                    container_inherit = (($inh -band 1) -ne 0)
                }
            }
            $item['aces'] = $aces
        } catch [System.Management.Automation.ItemNotFoundException] {
            $item['exists'] = $false
        } catch {
            $item['error'] = Get-FcErrorInfo $_
        }
        $items += $item
    }
    return @{ items = $items }
}
