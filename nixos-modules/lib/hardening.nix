# The sandbox every Roost unit in a VM runs in (service.nix's daemons, and the VoIP VM's
# Kamailio): nothing of the system writable, no capabilities beyond those named, only the
# address families named.
{ capabilities ? [ ]
, addressFamilies ? [ "AF_INET" "AF_INET6" "AF_UNIX" ]
, systemCallFilter ? [ "@system-service" "~@privileged @resources" ]
}:
{
  AmbientCapabilities = capabilities;
  CapabilityBoundingSet = capabilities;
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  ProtectProc = "invisible";
  ProcSubset = "pid";
  RestrictAddressFamilies = addressFamilies;
  RestrictNamespaces = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  RemoveIPC = true;
  SystemCallArchitectures = "native";
  SystemCallFilter = systemCallFilter;
  UMask = "0077";
}
