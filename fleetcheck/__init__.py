"""fleetcheck: fleet-wide compliance checks for Windows servers over PowerShell Remoting."""

__version__ = "0.1.0"
