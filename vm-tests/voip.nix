# Verifies the VoIP registrar (ADR 0014): the router's VoIP VM runs Kamailio with the phones
# `[voip]` declares; baresip phones on two LAN machines register at their router address (the
# firewall forwards SIP to the VoIP VM), a phone with a wrong password is refused, the
# kitchen calls the office by its extension, the office answers by itself, and each phone
# receives the other's audio straight from the other phone; the web UI's phones page (through
# roost-voip) shows the two registered. SIP is not offered to the guest zone. The passwords
# are test-only.
# Mirrors: lab_voip_phones_register_and_call_each_other_by_extension
{ pkgs, roostModule }:
let
  common = import ./lib.nix { inherit pkgs roostModule; };
  secrets = "/var/lib/roost/voip";
  kitchenPassword = "kitchen phone 2026";
  officePassword = "office-phone-2026";
  # A phone's baresip configuration directory: it listens on `listen` (and the next port,
  # SIP over TLS), registers `extension` at the lan router address, answers by itself, and
  # sends a tone (Opus) in calls.
  phone = name: listen: extension: password: pkgs.runCommand "phone-${name}" { } ''
    mkdir $out
    cat > $out/config <<CONF
    module_path ${pkgs.baresip}/lib/baresip/modules
    sip_listen ${listen}
    net_af ipv4
    module opus.so
    module ausine.so
    module aufile.so
    audio_source ausine,440
    audio_player aufile,/dev/null
    module_app account.so
    module_app menu.so
    CONF
    echo '<sip:${extension}@192.168.1.1>;auth_pass="${password}";regint=120;answermode=auto;audio_codecs=opus' > $out/accounts
  '';
  withBaresip = m: { ... }: {
    imports = [ m ];
    environment.systemPackages = [ pkgs.baresip ];
  };
  # baresip writes its configuration directory's state: run it from a writable copy.
  run = conf: log: extra:
    "cp -r ${conf} /tmp/${log} && chmod -R u+w /tmp/${log} && "
    + "(baresip -f /tmp/${log} ${extra} > /tmp/${log}.log 2>&1 &)";
in
pkgs.testers.runNixOSTest {
  name = "vm-voip";
  nodes = {
    inherit (common) isp;
    kitchen = withBaresip (common.client { address = "192.168.1.98"; });
    office = withBaresip (common.client { address = "192.168.1.99"; });
    guest = common.client { zone = "guest"; address = "192.168.30.99"; };
    router = { ... }: {
      imports = [ common.router ];
      services.roost.settings.voip = {
        zone = "lan";
        phones.kitchen = { extension = "101"; password_file = "${secrets}/kitchen"; };
        phones.office = { extension = "102"; password_file = "${secrets}/office"; };
        phones.hall = { extension = "103"; password_file = "${secrets}/hall"; };
      };
      systemd.tmpfiles.rules = [
        "f+ ${secrets}/kitchen 0600 root root - ${kitchenPassword}"
        "f+ ${secrets}/office 0600 root root - ${officePassword}"
        "f+ ${secrets}/hall 0600 root root - the hall phone's own"
      ];
    };
  };
  testScript = ''
    import json

    start_all()
    router.wait_for_unit("microvms.target")
    office.wait_until_succeeds("nc -z -w2 192.168.1.1 5060", timeout=300)

    with subtest("SIP is offered to lan, not to the guest zone"):
        guest.fail("nc -z -w2 192.168.30.1 5060")

    with subtest("a wrong password is refused; the office registers with its own"):
        kitchen.succeed("${run (phone "hall" "192.168.1.98:5360" "103" "not the hall password") "hall" ""}")
        office.succeed("${run (phone "office" "192.168.1.99:5260" "102" officePassword) "office" ""}")
        office.wait_until_succeeds("grep -q '200 OK' /tmp/office.log", timeout=60)
        kitchen.wait_until_succeeds("grep -q '401 Unauthorized' /tmp/hall.log", timeout=60)
        kitchen.fail("grep -q '103@192.168.1.1: .* 200 OK' /tmp/hall.log")

    with subtest("the kitchen calls the office by extension; the audio flows phone to phone"):
        kitchen.succeed("${run (phone "kitchen" "192.168.1.98:5160" "101" kitchenPassword) "kitchen" "-e '/dial 102'"}")
        kitchen.wait_until_succeeds("grep -q 'Call established' /tmp/kitchen.log", timeout=60)
        office.wait_until_succeeds("grep -q 'Call established: sip:101@' /tmp/office.log", timeout=30)
        kitchen.wait_until_succeeds("grep -q 'receiving from 192.168.1.99:' /tmp/kitchen.log", timeout=30)
        office.wait_until_succeeds("grep -q 'receiving from 192.168.1.98:' /tmp/office.log", timeout=30)

    with subtest("the web UI shows which phones are registered, through roost-voip"):
        office.wait_until_succeeds("curl -ksf -m5 -o /dev/null https://192.168.1.1/", timeout=300)
        office.succeed(
            "curl -ksf -m10 -c /tmp/jar -H 'content-type: application/json' "
            "-d '{\"password\": \"voip-test-password\"}' https://192.168.1.1/api/setup"
        )
        state = json.loads(office.succeed("curl -ksf -m10 -b /tmp/jar https://192.168.1.1/api/voip"))
        registered = sorted(p["name"] for p in state["phones"] if p["registered"])
        assert registered == ["kitchen", "office"], state
  '';
}
