# The same router on an x86_64 machine with KVM (a mini PC, or a VM for trying Roost out):
# the first NIC carries the household zones, the second is the WAN.
{ lib, modulesPath, ... }:
{
  imports = [ "${modulesPath}/profiles/qemu-guest.nix" ];

  nixpkgs.hostPlatform = "x86_64-linux";
  networking.hostName = "roost";
  system.stateVersion = "26.05";
  boot.loader.grub.device = "/dev/vda";
  fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };

  services.openssh.enable = false;
  users.mutableUsers = false;
  users.allowNoPasswordLogin = true;

  services.roost = {
    enable = true;
    lanInterface = "ens3";
    hypervisor = "qemu";
    settings = lib.recursiveUpdate (builtins.fromTOML (builtins.readFile ../../examples/roost.toml)) {
      wan.interface = "ens4";
    };
  };
}
