# Stand-in generations for update.nix, built inside the ISP VM (sandbox off, so the builder
# finds the VM's tools): plain derivations shaped like a router's closure. Each toplevel's
# switch-to-configuration records its activation and sets or clears the unhealthy marker the
# agent's health check reads; `bad` fails it. The same shape as roost-lab's update_tests.rs.
let
  mk = name: script: deps: derivation ({
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/run/current-system/sw/bin";
    args = [ "-c" script ];
  } // deps);
  lib = mk "roost-lib" "head -c 300000 /dev/urandom > $out" { };
  pkg = svc: v: mk "roost-${svc}-${v}" "echo ${svc} ${v} > $out; head -c 20000 /dev/urandom >> $out" { };
  vm = svc: v: mk "microvm-${svc}-${v}" "echo $lib $pkg > $out" { inherit lib; pkg = pkg svc v; };
  top = tag: dhcp: healthy: mk "nixos-system-roost-${tag}" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\necho ${tag} "$1" >> /run/update-test/activations\n${if healthy then "rm -f" else "touch"} /run/update-test/unhealthy\n' > $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
    echo $dns $dhcp > $out/vms
  ''
    { dns = vm "dns" "1"; dhcp = vm "dhcp" dhcp; };
in
{
  g1 = top "g1" "1" true;
  g2 = top "g2" "2" true;
  bad = top "bad" "3" false;
}
