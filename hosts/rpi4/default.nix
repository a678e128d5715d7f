# A Roost router on a Raspberry Pi 4 (2 GB or more): the onboard NIC carries the household
# zones (untagged LAN plus VLANs to a managed switch or access point), a USB 3 gigabit NIC is
# the WAN. Composition and per-board values only.
{ lib, modulesPath, ... }:
{
  imports = [ "${modulesPath}/installer/sd-card/sd-image-aarch64.nix" ];
  # That module also pulls in the installer's base profile (recovery tools, ZFS and other file
  # systems): nothing a router needs, and every package is one more thing to update.
  disabledModules = [ "profiles/base.nix" ];

  nixpkgs.hostPlatform = "aarch64-linux";
  networking.hostName = "roost";
  system.stateVersion = "26.05";
  hardware.enableRedistributableFirmware = true;
  boot.kernelParams = [ "console=ttyS1,115200n8" ];

  # Nothing to log in with by default: the router is managed through its web UI (first-run
  # page from the LAN) and updates itself; a console needs a key added here by hand.
  services.openssh.enable = false;
  users.mutableUsers = false;
  users.allowNoPasswordLogin = true;

  services.roost = {
    enable = true;
    lanInterface = "end0";
    # qemu: cloud-hypervisor and firecracker fail on the Pi 4's GICv2.
    hypervisor = "qemu";
    settings = lib.recursiveUpdate (builtins.fromTOML (builtins.readFile ../../examples/roost.toml)) {
      wan.interface = "eth1";
    };
  };
}
