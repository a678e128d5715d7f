{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.services.roost.firewall = import ../lib/guest-options.nix
    {
      inherit lib;
      name = "firewall";
      description = "roost-firewall, the router between zones: nftables ruleset, NAT, WAN address";
    } // {
    wanIpv6 = mkOption {
      type = types.bool;
      default = false;
      description = ''
        The settings have `[wan.ipv6]`: the firewall's DHCPv6 client asks for an address and a
        delegated prefix, and the WAN takes the ISP's router advertisements (accept_ra = 2).
      '';
    };
    pppoe = mkOption {
      type = types.nullOr (types.submodule {
        options = {
          peerFile = mkOption {
            type = types.path;
            description = "pppd's peer file, rendered on the host by `roostctl config pppd`.";
          };
          username = mkOption {
            type = types.str;
            description = "The PPPoE user name (`wan.pppoe.username`).";
          };
          passwordFile = mkOption {
            type = types.str;
            description = ''
              The file holding the PPPoE password inside this VM (`wan.pppoe.password_file`), on
              its state volume so it survives updates and never enters the Nix store.
            '';
          };
        };
      });
      default = null;
      defaultText = lib.literalExpression "null";
      description = "Run pppd for a PPPoE uplink on the WAN NIC (`wan.mode = \"pppoe\"`, ADR 0011).";
    };
  };
}
