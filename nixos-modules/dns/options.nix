{ lib, ... }:
{
  options.services.roost.dns = import ../lib/guest-options.nix {
    inherit lib;
    name = "dns";
    description = "roost-dns, the caching resolver";
  };
}
