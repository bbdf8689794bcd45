using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>
/// The daemon as deploy/whalewall.service runs it, without systemd (there is none to run it
/// under here): setpriv gives it what the unit's User=, SupplementaryGroups=,
/// AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges= say, read from the unit
/// file, with uid 65534 standing in for its (non-root) user, which does not exist here. The
/// harness' dockerd gives its socket the `docker` group, as a packaged dockerd does. A daemon
/// with a table of its own runs next to the collection's.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class NonRootDaemonTests(E2eFixture fx, ITestOutputHelper output)
{
    private const int Uid = 65534;
    private DockerHarness H => fx.Harness;
    private int SocketGid => int.Parse(Shell.Run("stat", "-c", "%g", H.DockerSocket).Trim());

    private WhaleWallDaemon NonRoot(string name, bool withSocketGroup)
    {
        var d = new WhaleWallDaemon(H.HostNsPath, H.DockerHost, "ww_" + name + "_" + H.RunId.Replace("-", "_")[4..],
            Path.Combine(H.Dir, name + "-data"), Path.Combine(H.Dir, $"whalewall-{name}.log"));
        // systemd's StateDirectory= would create and chown it
        Directory.CreateDirectory(d.DataDir);
        Shell.Run("chown", $"{Uid}:{Uid}", d.DataDir);
        d.ExtraEnvironment["WHALEWALL_METRICS_ADDR"] = "127.0.0.1:50001";

        var unit = SystemdUnitTests.Unit();
        string One(string key) => Assert.Single(SystemdUnitTests.Values(unit, key));
        var uid = One("User") == "root" ? "0" : Uid.ToString();
        static string Caps(string list) => string.Join(',', list.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(c => "+" + c.ToLowerInvariant().Replace("cap_", "")));
        var groups = One("SupplementaryGroups");
        Assert.Equal(groups, Shell.Run("stat", "-c", "%G", H.DockerSocket).Trim());   // the unit's group is the socket's here
        d.Wrapper =
        [
            "setpriv", "--reuid", uid, "--regid", uid,
            .. withSocketGroup ? new[] { "--groups", groups.Replace(' ', ',') } : ["--clear-groups"],
            "--inh-caps", "-all," + Caps(One("AmbientCapabilities")), "--ambient-caps", "-all," + Caps(One("AmbientCapabilities")),
            "--bounding-set", "-all," + Caps(One("CapabilityBoundingSet")),
            .. One("NoNewPrivileges") == "yes" ? new[] { "--no-new-privs" } : [],
            "--",
        ];
        return d;
    }

    private static string Sysctl(string ns, string key, string? value = null) =>
        value is null
            ? Shell.Run("nsenter", "--net=" + ns, "cat", "/proc/sys/net/bridge/" + key).Trim()
            : Shell.Run("nsenter", "--net=" + ns, "sh", "-c", $"echo {value} > /proc/sys/net/bridge/{key}");

    [Fact]
    public Task As_the_unit_runs_it_the_daemon_is_not_root_reads_docker_through_the_group_programs_nftables_and_sets_bridge_sysctls() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();   // the collection's daemon: it must see the sysctls back at 1 afterwards
        var d = NonRoot("nonroot", withSocketGroup: true);
        // the harness' host namespace is ours: turn the bridge sysctls off so the daemon must set them
        Sysctl(H.HostNsPath, "bridge-nf-call-iptables", "0");
        Sysctl(H.HostNsPath, "bridge-nf-call-ip6tables", "0");
        try
        {
            await d.StartAsync();
            var status = File.ReadAllLines($"/proc/{d.Pid}/status").Select(l => l.Split(':', 2))
                .Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());
            output.WriteLine(string.Join('\n', new[] { "Uid", "Groups", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp_filters" }
                .Select(k => $"{k}: {status.GetValueOrDefault(k)}")));
            Assert.Equal($"{Uid}\t{Uid}\t{Uid}\t{Uid}", status["Uid"]);
            Assert.Equal([SocketGid.ToString()], status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries));
            const string netAdminOnly = "0000000000001000";
            Assert.Equal(netAdminOnly, status["CapEff"]);
            Assert.Equal(netAdminOnly, status["CapPrm"]);
            Assert.Equal(netAdminOnly, status["CapBnd"]);
            Assert.Equal(netAdminOnly, status["CapAmb"]);   // kept across the sandbox's re-exec
            Assert.Equal("2", status["Seccomp_filters"]);

            // CAP_NET_ADMIN alone let it write its namespace's net.bridge sysctls (root's files)
            Assert.Equal("1", Sysctl(H.HostNsPath, "bridge-nf-call-iptables"));
            Assert.Equal("1", Sysctl(H.HostNsPath, "bridge-nf-call-ip6tables"));
            Assert.DoesNotContain("cannot set", File.ReadAllText(d.LogFile));

            // the socket is root's, 0660: the group is its only way in; and it programs its table
            Assert.Equal($"0 {SocketGid} 660", Shell.Run("stat", "-c", "%u %g %a", H.DockerSocket).Trim());
            var c = await H.RunContainerAsync(fx.Name("nonroot"), new ContainerOptions { Labels = E2eLabels.OptIn() });
            await d.KernelTable().WaitManaged(await c.IpAsync());
            await c.RemoveAsync();
            Assert.Equal($"{Uid}", Shell.Run("stat", "-c", "%u", Path.Combine(d.DataDir, "whalewall.db")).Trim());
        }
        finally
        {
            await d.StopAsync();
            Shell.Try("nsenter", "--net=" + d.HostNsPath, "nft", "delete", "table", "inet", d.Table);
            Sysctl(H.HostNsPath, "bridge-nf-call-iptables", "1");
            Sysctl(H.HostNsPath, "bridge-nf-call-ip6tables", "1");
        }
    });

    [Fact]
    public Task Without_the_socket_group_the_daemon_exits_at_once_saying_why() => fx.Run(output, async () =>
    {
        var d = NonRoot("nogroup", withSocketGroup: false);
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => d.StartAsync(TimeSpan.FromSeconds(30)));
            output.WriteLine(e.Message);
            Assert.Contains("(code 4)", e.Message);
            Assert.Contains($"permission denied on the Docker socket {H.DockerSocket} (owned by uid 0 gid {SocketGid}, mode 660); " +
                            $"whalewall runs as uid {Uid} gid {Uid} groups []", e.Message);
        }
        finally
        {
            await d.StopAsync();
            Shell.Try("nsenter", "--net=" + d.HostNsPath, "nft", "delete", "table", "inet", d.Table);
        }
    });
}
