# Every VM test, collected into the flake's `checks` as vm-<behaviour>. Each file's header says
# what it verifies and which lab e2e tests it mirrors (crates/roost-lab/tests compares the two).
{ pkgs, roostModule }:
let
  test = file: import file { inherit pkgs roostModule; };
in
{
  vm-nat = test ./nat.nix;
  vm-isolation = test ./isolation.nix;
  vm-ipv6 = test ./ipv6.nix;
  vm-prefix-delegation = test ./prefix-delegation.nix;
  vm-resolve = test ./resolve.nix;
  vm-recursion = test ./recursion.nix;
  vm-lease = test ./lease.nix;
  vm-mqtt = test ./mqtt.nix;
  vm-web = test ./web.nix;
  vm-update = test ./update.nix;
  vm-wifi = test ./wifi.nix;
  vm-voip = test ./voip.nix;
}
