# The three machines every Roost VM test uses, wired as nixpkgs' nat.nix does: the ISP on
# VLAN 1 (the router's WAN), the router (the real Roost host, each service in its microVM),
# and household clients on VLAN 2 (the router's LAN trunk; the IoT and guest zones are VLANs 20
# and 30 on it, as in examples/roost.toml). Addresses are the lab's: documentation ranges only.
# NICs are declared with `virtualisation.interfaces`, not `vlans`: the test framework gives a
# `vlans` NIC addresses of its own (192.168.<vlan>.<n>, 2001:db8:<vlan>::<n>), which the router's
# host must not have and which would compete with the clients' own in source address selection.
{ pkgs, roostModule }:
let
  lib = pkgs.lib;
  settings = lib.recursiveUpdate (builtins.fromTOML (builtins.readFile ../examples/roost.toml)) {
    wan.interface = "eth1";
    # This ISP (dnsmasq) serves no signed root, which validation from the real root needs;
    # vm-recursion's ISP does (knot, signed at build time) and checks the AD bit, as the lab.
    dns.dnssec = false;
  };
  client = { zone ? "lan", address ? null }: { ... }: {
    virtualisation.interfaces.eth1.vlan = 2;
    networking.useDHCP = false;
    networking.firewall.enable = false;
    networking.vlans = lib.optionalAttrs (zone != "lan") {
      "zone" = { id = settings.zones.${zone}.vlan; interface = "eth1"; };
    };
    networking.interfaces.${if zone == "lan" then "eth1" else "zone"} =
      if address == null then { useDHCP = true; }
      else { ipv4.addresses = [{ inherit address; prefixLength = 24; }]; };
    environment.systemPackages = [ pkgs.curl pkgs.dig pkgs.netcat-openbsd pkgs.python3 ];
  };
in
{
  inherit settings client;

  # The Internet: DHCP for the WAN link, DNS for isp.test, a web server that says whom it sees.
  isp = { ... }: {
    virtualisation.interfaces.eth1.vlan = 1;
    networking.useDHCP = false;
    networking.firewall.enable = false;
    networking.interfaces.eth1.ipv4.addresses = [
      { address = "203.0.113.1"; prefixLength = 24; }
      { address = "198.51.100.53"; prefixLength = 32; }
      { address = "198.51.100.80"; prefixLength = 32; }
    ];
    services.dnsmasq = {
      enable = true;
      resolveLocalQueries = false;
      settings = {
        interface = "eth1";
        bind-interfaces = true;
        dhcp-range = "203.0.113.10,203.0.113.99,255.255.255.0,10m";
        dhcp-option = [ "option:router,203.0.113.1" "option:dns-server,198.51.100.53" ];
        listen-address = "198.51.100.53";
        no-resolv = true;
        host-record = [ "www.isp.test,198.51.100.80" "ns.isp.test,198.51.100.53" ];
      };
    };
    services.nginx = {
      enable = true;
      virtualHosts.isp = {
        listen = [{ addr = "198.51.100.80"; port = 80; }];
        locations."/".return = ''200 "client $remote_addr\n"'';
      };
    };
    environment.systemPackages = [ pkgs.curl pkgs.netcat-openbsd ];
  };

  router = { ... }: {
    imports = [ roostModule ];
    virtualisation = {
      interfaces = { eth1.vlan = 1; eth2.vlan = 2; };
      memorySize = 2048;
      cores = 2;
    };
    services.roost = {
      enable = true;
      inherit settings;
      lanInterface = "eth2";
    };
  };
}
