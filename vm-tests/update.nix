# Verifies signed updates with automatic rollback: the ISP builds stand-in generations
# (update-generations.nix), puts them in a binary cache, publishes them with test keys in a TUF
# repository served by its web server; the router's update agent checks, fetches over the WAN,
# hands them to the host step through the spool, which verifies them again without a network
# of its own and installs into a separate store and profile root; the agent reports the new
# generation in /state, only the service VM whose closure changed restarts, and a generation
# whose health check fails is switched back by itself. (The agent and the host step run as
# units of the router's host here, pinned to the root the ISP published at run time; the
# update VM of nixos-modules/update needs its root at build time.)
# Mirrors: lab_update_agent_installs_a_generation_from_the_isp_and_rolls_back_an_unhealthy_one
{ pkgs, roostModule }:
let
  common = import ./lib.nix { inherit pkgs roostModule; };
  # Test-only token of the agent's control API.
  token = "update-test-token";
  api = "curl -sf -H 'Authorization: Bearer ${token}' http://127.0.0.1:9122";
in
pkgs.testers.runNixOSTest {
  name = "vm-update";
  nodes = {
    isp = { config, nodes, ... }: {
      imports = [ common.isp ];
      # The stand-in builders use the VM's tools.
      nix.settings.sandbox = false;
      nix.settings.experimental-features = [ "nix-command" ];
      services.nginx.virtualHosts.isp.locations."/updates/".alias = "/srv/updates/";
      environment.systemPackages = [ config.nix.package nodes.router.services.roost.packages.roost-update pkgs.jq ];
      environment.etc."update-generations.nix".source = ./update-generations.nix;
    };
    router = { config, ... }: {
      imports = [ common.router ];
      environment.systemPackages = [ pkgs.curl pkgs.jq ];
      environment.etc = {
        "roost/update-test-token".text = token;
        "roost/update-test.toml".text = ''
          dns_server = "127.0.0.1"
          hostname = "roost"
          peers = []
          [control]
          listen = "127.0.0.1:9122"
          token_file = "/etc/roost/update-test-token"
          [network]
          gateway = "127.0.0.1"
          interfaces = []
          [update]
          repository = "http://198.51.100.80/updates/tuf"
          channel = "stable"
          auto = false
        '';
        "roost/update-test-system.toml".text = ''
          root = "/var/lib/update-test/root.json"
          spool = "/var/lib/update-test/spool"
          health_timeout_secs = 10
          [[checks]]
          name = "generation"
          command = ["sh", "-c", "! test -e /run/update-test/unhealthy"]
        '';
        "roost/update-test-host.toml".text = ''
          root = "/var/lib/update-test/root.json"
          hostname = "roost"
          spool = "/var/lib/update-test/spool"
          store = "/var/lib/update-test/store"
          profile = "/var/lib/update-test/profiles/system"
          nix_bin = "${config.nix.package}/bin"
          restart = ["sh", "-c", "echo \"$0\" >> /run/update-test/restarts", "{vm}"]
        '';
      };
      # The host step: no network, as in nixos-modules/host.
      systemd.services.roost-update-test-host = {
        description = "roost-update host step for the test agent";
        path = [ pkgs.bash pkgs.coreutils ];
        serviceConfig = {
          ExecStart = "${config.services.roost.packages.roost-update}/bin/roost-update host --settings /etc/roost/update-test-host.toml";
          StateDirectory = "update-test/host";
          RuntimeDirectory = "update-test";
          RuntimeDirectoryPreserve = true;
          PrivateNetwork = true;
          IPAddressDeny = "any";
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      };
      systemd.services.roost-update-test = {
        description = "roost-update agent against the test ISP";
        path = [ pkgs.bash pkgs.coreutils ];
        serviceConfig = {
          ExecStart = "${config.services.roost.packages.roost-update}/bin/roost-update agent --config /etc/roost/update-test.toml --system /etc/roost/update-test-system.toml";
          StateDirectory = "update-test/agent";
          RuntimeDirectory = "update-test";
          RuntimeDirectoryPreserve = true;
        };
      };
    };
  };
  testScript = ''
    def publish(generation, tag):
        top = isp.succeed(f"nix-build /etc/update-generations.nix -A {tag} --no-out-link").strip()
        isp.succeed(f"nix copy --to file:///srv/updates/cache {top}")
        services = " ".join(
            f"--service {p.split('-microvm-')[1].rsplit('-', 1)[0]}={p}"
            for p in isp.succeed(f"nix-store -q --references {top}").split()
        )
        isp.succeed(
            f"echo '{{\"job\":\"nixosConfigurations.roost.config.system.build.toplevel\",\"buildoutputs\":{{\"out\":{{\"path\":\"{top}\"}}}}}}' > /tmp/build.json",
            "roost-update publish --repo /srv/updates/tuf --key-dir /root/test-keys --build /tmp/build.json"
            + " --cache /srv/updates/cache --cache-url http://198.51.100.80/updates/cache/"
            + f" --channel stable --host roost --generation {generation} {services}",
        )

    def committed(generation):
        # Waits until no update is pending and returns the agent's /state.
        router.wait_until_succeeds(f"${api}/state | jq -e '.pending == null and .current.generation == {generation}'", timeout=120)
        return router.succeed("${api}/state")

    start_all()
    router.wait_for_unit("microvms.target")

    with subtest("the ISP publishes generation 1"):
        isp.succeed("mkdir -p /srv/updates && chmod 755 /srv/updates")
        isp.succeed("roost-update keys init --repo /srv/updates/tuf --key-dir /root/test-keys --pin /srv/updates/root.json")
        publish(1, "g1")
        router.wait_until_succeeds("curl -sf -o /dev/null http://198.51.100.80/updates/tuf/metadata/1.root.json", timeout=300)
        # The router pins the root the ISP made (test keys only).
        router.succeed("mkdir -p /var/lib/update-test && curl -sf -o /var/lib/update-test/root.json http://198.51.100.80/updates/root.json")
        router.succeed("mkdir -p /var/lib/update-test/spool", "systemctl start roost-update-test-host roost-update-test")
        router.wait_until_succeeds("${api}/health", timeout=60)

    with subtest("the agent installs generation 1"):
        router.succeed("${api}/check -X POST | grep -F '[1]'", "${api}/apply -X POST")
        committed(1)
        # It was switched to, and both service VMs started.
        router.succeed("test \"$(cat /run/update-test/activations)\" = 'g1 switch'")
        router.succeed("test \"$(sort /run/update-test/restarts | tr '\\n' ' ')\" = 'dhcp dns '")

    with subtest("generation 2 changes only dhcp: only it is fetched and restarted"):
        publish(2, "g2")
        router.succeed("${api}/check -X POST", "${api}/apply -X POST")
        state = committed(2)
        # Three paths: the dhcp package, its VM, the toplevel.
        assert '"paths_total":3' in state.replace(" ", ""), state
        router.succeed("test \"$(tail -n 1 /run/update-test/restarts)\" = dhcp")
        router.succeed("test $(wc -l < /run/update-test/restarts) -eq 3")

    with subtest("an unhealthy generation rolls back by itself"):
        publish(3, "bad")
        router.succeed("${api}/check -X POST", "${api}/apply -X POST")
        router.wait_until_succeeds("${api}/state | jq -e '.pending == null and (.failed | has(\"3\"))'", timeout=120)
        # Back on generation 2, activated again, with the reason recorded.
        router.succeed("${api}/state | jq -e '.current.generation == 2'")
        router.succeed("test \"$(tail -n 1 /run/update-test/activations)\" = 'g2 switch'")
        router.succeed("${api}/state | jq -e '.failed[\"3\"] | contains(\"generation\")'")
        # Never tried again.
        router.fail("${api}/apply -X POST")
        # Every generation went into the store through the host step.
        router.succeed("test $(journalctl -u roost-update-test-host | grep -c 'generation verified and imported') -eq 3")
  '';
}
