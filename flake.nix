{
  description = "Roost: a home router with every network service in its own microVM, and signed updates that roll back by themselves";

  # Keep these URLs character for character: flake.lock was computed for exactly them
  # (see docs/nix.md). Changing one makes Nix lock that input anew.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    microvm.url = "github:microvm-nix/microvm.nix";
    microvm.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = { self, nixpkgs, crane, microvm, ... }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];

      # RustSec's advisory database for checks.audit, pinned. A fixed-output fetch rather than a
      # flake input, so a stale or wrong pin fails that one check, never the flake's evaluation.
      # Bump (docs/nix.md): `nix flake prefetch github:rustsec/advisory-db --json` gives both.
      advisoryDb = {
        rev = "6de4455103aced2cba86e3b86e5c090b22827cf1"; # 2026-10-01
        hash = "sha256-pf1LEfjD6m4Lfs44r1d2IKMCpwBM+KKfURzIMlixuXc=";
      };
      forAllSystems = f: lib.genAttrs systems (system: f system);

      # The Cargo workspace, built once per system with crane: one shared dependency build,
      # one package per binary crate, and the checks CI runs.
      workspaceFor = system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          craneLib = crane.mkLib pkgs;

          # Only what cargo needs, plus the fixtures tests read, so unrelated edits (docs,
          # Nix files) do not rebuild the workspace.
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions [
              (craneLib.fileset.commonCargoSources ./.)
              ./examples
              ./.config/nextest.toml
              ./nixos-modules
              ./vm-tests
              (lib.fileset.fileFilter (f: f.hasExt "nft") ./crates)
              # Static files roost-web embeds (stylesheet, scripts), once it has any.
              (lib.fileset.maybeMissing ./crates/roost-web/assets)
            ];
          };

          commonArgs = {
            inherit src;
            pname = "roost";
            version = "0.1.0";
            strictDeps = true;
            nativeBuildInputs = [ pkgs.pkg-config ];
          };

          cargoArtifacts = craneLib.buildDepsOnly commonArgs;

          # One NixOS VM test per behaviour, mirroring the lab e2e tests (vm-tests/).
          vmTests = import ./vm-tests { inherit pkgs; roostModule = self.nixosModules.default; };

          crate = name: craneLib.buildPackage (commonArgs // {
            inherit cargoArtifacts;
            pname = name;
            cargoExtraArgs = "--locked -p ${name}";
            # Tests run once, in checks.nextest, not again per package.
            doCheck = false;
            meta.mainProgram = name;
          });

          packages = lib.genAttrs [
            "roostctl"
            "roost-firewall"
            "roost-dns"
            "roost-dhcp"
            "roost-mqtt"
            "roost-web"
            "roost-update"
            "roost-wifi"
            "roost-voip"
          ]
            crate;
        in
        {
          packages = packages // { default = packages.roostctl; };

          checks = packages // vmTests // {
            clippy = craneLib.cargoClippy (commonArgs // {
              inherit cargoArtifacts;
              cargoClippyExtraArgs = "--all-targets -- --deny warnings";
            });
            fmt = craneLib.cargoFmt { inherit (commonArgs) src pname version; };
            # Cargo.lock against the pinned advisory database: a vulnerability fails the check,
            # unsound and unmaintained crates are warnings. Yanked crates need the crates.io
            # index, which the sandbox cannot reach (crane's default `--ignore yanked`).
            audit = craneLib.cargoAudit {
              inherit (commonArgs) src pname version;
              advisory-db = pkgs.fetchFromGitHub ({ owner = "rustsec"; repo = "advisory-db"; } // advisoryDb);
            };
            doc = craneLib.cargoDoc (commonArgs // {
              inherit cargoArtifacts;
              RUSTDOCFLAGS = "--deny warnings";
            });
            # The sandbox has no root and no network namespaces: the `nix` profile leaves out
            # the lab tests, which the vm-tests cover there instead.
            nextest = craneLib.cargoNextest (commonArgs // {
              inherit cargoArtifacts;
              cargoNextestExtraArgs = "--profile nix";
              # Real peers the loopback tests start: knot as an upstream, dig and kdig as
              # clients; hostapd and Kamailio check the configurations roostctl renders.
              nativeBuildInputs = commonArgs.nativeBuildInputs
                ++ [ pkgs.knot-dns pkgs.dig pkgs.python3 pkgs.hostapd pkgs.kamailio ];
            });
          };

          devShell = craneLib.devShell {
            checks = self.checks.${system};
            packages = [
              pkgs.cargo-nextest
              pkgs.deadnix
              pkgs.nixpkgs-fmt
              pkgs.nftables
              pkgs.iproute2
            ];
          };
        };

      perSystem = forAllSystems workspaceFor;
    in
    {
      packages = lib.recursiveUpdate (lib.mapAttrs (_: w: w.packages) perSystem) {
        # The SD-card image of hosts/rpi4: `nix build .#rpi4-image`.
        aarch64-linux.rpi4-image = self.nixosConfigurations.rpi4.config.system.build.sdImage;
      };

      nixosModules = {
        host = ./nixos-modules/host;
        guest = ./nixos-modules/guest;
        firewall = ./nixos-modules/firewall;
        dns = ./nixos-modules/dns;
        dhcp = ./nixos-modules/dhcp;
        mqtt = ./nixos-modules/mqtt;
        web = ./nixos-modules/web;
        update = ./nixos-modules/update;
        # The Wi-Fi VM's hostapd (ADR 0013; not a Roost daemon, so no package of its own).
        wifi = ./nixos-modules/wifi;
        # The VoIP VM's Kamailio and roost-voip (ADR 0014).
        voip = ./nixos-modules/voip;
        # The Roost host with microvm.nix and this flake's packages.
        default = { pkgs, lib, ... }: {
          imports = [ microvm.nixosModules.host ./nixos-modules/host ];
          services.roost.packages = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system};
        };
      };

      nixosConfigurations = {
        rpi4 = nixpkgs.lib.nixosSystem { modules = [ self.nixosModules.default ./hosts/rpi4 ]; };
        x86-vm = nixpkgs.lib.nixosSystem { modules = [ self.nixosModules.default ./hosts/x86-vm ]; };
      };
      checks = lib.mapAttrs (_: w: w.checks) perSystem;
      devShells = lib.mapAttrs (_: w: { default = w.devShell; }) perSystem;
      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixpkgs-fmt);

      # Hydra builds every package and check for both systems, the image, and each host's
      # toplevel (what `roost-update publish` signs as a generation).
      hydraJobs = {
        inherit (self) packages checks;
        toplevel = lib.mapAttrs (_: host: host.config.system.build.toplevel) self.nixosConfigurations;
      };
    };
}
