# Adds one Allow FullControl entry for a SID, inherited by subfolders and files; touches no other entry.
function Get-FcDirAcl {
    param($Dir)
    if ($PSVersionTable.PSEdition -eq 'Core') {
        return [System.IO.FileSystemAclExtensions]::GetAccessControl($Dir, [System.Security.AccessControl.AccessControlSections]::Access)
    }
    return $Dir.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
}

function Invoke-FcAcl {
    param($P, [int]$TimeoutMs)
    $path = [string]$P.path
    $sid = New-Object System.Security.Principal.SecurityIdentifier ([string]$P.sid)
    $dir = New-Object System.IO.DirectoryInfo $path
    if (-not $dir.Exists) {
        throw (New-Object System.IO.DirectoryNotFoundException ('no folder ' + $path))
    }
    $section = [System.Security.AccessControl.AccessControlSections]::Access
    $full = [System.Security.AccessControl.FileSystemRights]::FullControl
    $acl = Get-FcDirAcl $dir
    $before = $acl.GetSecurityDescriptorSddlForm($section)
    foreach ($rule in @($acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]))) {
        $inheritOnly = ($rule.PropagationFlags -band [System.Security.AccessControl.PropagationFlags]::InheritOnly) -ne 0
        if ($rule.IdentityReference.Value -eq $sid.Value -and [string]$rule.AccessControlType -eq 'Allow' -and (($rule.FileSystemRights -band $full) -eq $full) -and -not $inheritOnly) {
            return @{ changed = $false; before = $before; after = $before; detail = 'SYSTEM already has full control' }
        }
    }
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $none = [System.Security.AccessControl.PropagationFlags]::None
    $allow = [System.Security.AccessControl.AccessControlType]::Allow
    $new = New-Object System.Security.AccessControl.FileSystemAccessRule($sid, $full, $inherit, $none, $allow)
    $acl.AddAccessRule($new)
    if ($PSVersionTable.PSEdition -eq 'Core') {
        [System.IO.FileSystemAclExtensions]::SetAccessControl($dir, $acl)
    } else {
        $dir.SetAccessControl($acl)
    }
    $after = (Get-FcDirAcl $dir).GetSecurityDescriptorSddlForm($section)
    return @{ changed = $true; before = $before; after = $after }
}
