using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// WhaleWall's container image, run as the repo's deploy files say: docker-compose.yml with
/// docker-compose, and deploy/swarm-stack.yml with `docker stack deploy` on a single-node
/// Swarm, both against the image harness' private dockerd (its "host" network is the harness
/// namespace). Each proves enforcement with real connections from the example service's
/// containers, and that an unlabeled container is left alone; and that the daemon does it as
/// uid 10001 holding CAP_NET_ADMIN and nothing else, reaching the Docker socket (root, mode 0660)
/// only through the group given at run time. Without that group, or without the capability,
/// the image does not start and says why.
/// </summary>
[Collection(ImageCollection.Name)]
public sealed class ImageTests(ImageFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;
    private string Compose => Path.Combine(fx.RepoRoot, "docker-compose.yml");
    private string Stack => Path.Combine(fx.RepoRoot, "deploy", "swarm-stack.yml");

    private async Task Run(Func<Task> body)
    {
        try { await body(); }
        catch
        {
            lock (fx.Diagnostics) foreach (var d in fx.Diagnostics) output.WriteLine(d);
            output.WriteLine("---- nft table ----\n" + fx.KernelTable.ListText());
            output.WriteLine("---- deploy log (tail) ----\n" + E2eProcess.Tail(fx.Log, 60));
            output.WriteLine("---- dockerd log (tail) ----\n" + H.DockerdLogTail(20));
            throw;
        }
    }

    private async Task AssertTcp(string ns, string ip, int port, bool allowed, string what)
    {
        if (allowed)
        {
            var last = ProbeOutcome.TimedOut;
            var ok = await E2eProcess.Eventually(() => (last = Probe.Tcp(ns, Guard(ip), port, TimeSpan.FromSeconds(1))) == ProbeOutcome.Connected,
                TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
            Assert.True(ok, $"{what}: tcp to {ip}:{port} should connect, got {last}\n{fx.KernelTable.ListText()}");
        }
        else
        {
            var outcome = Probe.Tcp(ns, Guard(ip), port, TimeSpan.FromSeconds(1));
            Assert.True(outcome == ProbeOutcome.TimedOut, $"{what}: tcp to {ip}:{port} should be dropped, got {outcome}\n{fx.KernelTable.ListText()}");
        }
    }

    /// <summary>The example service's rule: TCP 80 to Server1, nothing else.</summary>
    private async Task AssertExampleEnforced(string ns, string ip, string what)
    {
        await fx.KernelTable.WaitManaged(ip);
        await AssertTcp(ns, Server1, TcpPort, true, what);
        await Task.WhenAll(
            Task.Run(() => AssertTcp(ns, Server2, TcpPort, false, what + " (other address)")),
            Task.Run(() => AssertTcp(ns, Server1, TcpPortOther, false, what + " (other port)")),
            Task.Run(() => Assert.False(Probe.UdpEcho(ns, Guard(Server1), UdpPort, TimeSpan.FromSeconds(1)), $"{what}: udp should be dropped")));
    }

    /// <summary>The daemon process of a WhaleWall container, read from the host's /proc: uid
    /// 10001, exactly CAP_NET_ADMIN (effective, permitted, bounding; nothing inheritable or
    /// ambient), the socket's group, the sandbox's two seccomp filters; and the socket is
    /// root's, mode 0660, with that group, so the group is the only way in.</summary>
    private async Task AssertLeastPrivilege(string containerId, bool socketGroupIsPrimary)
    {
        var i = await H.Docker.Containers.InspectContainerAsync(containerId);
        var pid = (int)i.State.Pid;
        Assert.Equal("/app/whalewall\0run\0", File.ReadAllText($"/proc/{pid}/cmdline"));   // the daemon itself is the container's pid 1
        var status = File.ReadAllLines($"/proc/{pid}/status").Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());
        output.WriteLine(string.Join('\n', new[] { "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters" }
            .Select(k => $"{k}: {status.GetValueOrDefault(k)}")));

        var gid = fx.DockerSocketGid;
        Assert.Equal($"0 {gid} 660", Shell.Run("stat", "-c", "%u %g %a", H.DockerSocket).Trim());
        Assert.NotEqual(0, gid);
        Assert.Equal("10001\t10001\t10001\t10001", status["Uid"]);
        Assert.Equal(socketGroupIsPrimary ? $"{gid}\t{gid}\t{gid}\t{gid}" : "10001\t10001\t10001\t10001", status["Gid"]);
        if (!socketGroupIsPrimary) Assert.Contains(gid.ToString(), status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("0", status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        const string netAdminOnly = "0000000000001000";   // 1 << CAP_NET_ADMIN (12)
        Assert.Equal(netAdminOnly, status["CapEff"]);
        Assert.Equal(netAdminOnly, status["CapPrm"]);
        Assert.Equal(netAdminOnly, status["CapBnd"]);
        Assert.Equal("0000000000000000", status["CapInh"]);
        Assert.Equal("0000000000000000", status["CapAmb"]);
        // the sandbox's no_new_privs, and its filters: the first stage's and the second's, on top
        // of the runtime's own profile (Docker's default: one more)
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("2", status["Seccomp"]);
        Assert.True(int.Parse(status["Seccomp_filters"]) >= 2, $"Seccomp_filters: {status["Seccomp_filters"]}");
    }

    /// <summary>Runs the image in the foreground like docker-compose.yml but without the socket's
    /// group, plus <paramref name="extra"/> docker run options; returns its exit code and output.</summary>
    private (int Code, string Output) RunImage(string table, params string[] extra)
    {
        var name = "ww-" + table;
        try
        {
            return Cli.Run(fx.Log, fx.Env(), TimeSpan.FromMinutes(2), "/usr/bin/docker",
            [
                "run", "--name", name, "--network", "host", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
                "-v", H.DockerSocket + ":/var/run/docker.sock:ro", "-e", "WHALEWALL_NFT_TABLE=" + table, .. extra, ImageFixture.Image,
            ]);
        }
        finally { Cli.Run(fx.Log, fx.Env(), TimeSpan.FromMinutes(1), "/usr/bin/docker", "rm", "-f", "-v", name); }
    }

    private async Task AssertUnlabeledUntouched()
    {
        var plain = await H.RunContainerAsync("plain-" + Guid.NewGuid().ToString("N")[..4]);
        var ns = await plain.NsPathAsync();
        var ip = await plain.IpAsync();
        await AssertTcp(ns, Server1, TcpPort, true, "unlabeled");
        await AssertTcp(ns, Server2, TcpPort, true, "unlabeled");
        Assert.True(Probe.UdpEcho(ns, Guard(Server1), UdpPort, TimeSpan.FromSeconds(2)), "unlabeled: udp should pass");
        Assert.False(fx.KernelTable.IsManaged(ip), "an unlabeled container must not be managed");
        await plain.RemoveAsync();
    }

    [Fact]
    public Task Compose_file_runs_whalewall_from_the_image_and_it_filters_the_labelled_example() => Run(async () =>
    {
        const string project = "wwc";
        var compose = new[] { "-f", Compose, "-p", project };
        try
        {
            Cli.RunOk(fx.Log, fx.Env(), TimeSpan.FromMinutes(3), "docker-compose", [.. compose, "up", "-d", "--no-build"]);
            var ww = Assert.Single(await fx.ContainersAsync(("com.docker.compose.project", project), ("com.docker.compose.service", "whalewall")));
            var logs = await fx.WaitReadyAsync(ww.ID, TimeSpan.FromSeconds(60));
            output.WriteLine(Cli.Tail(logs, 15));

            // run as the compose file says: host network, NET_ADMIN only, the socket's group from
            // DOCKER_GID, socket read-only, state in a volume
            var i = await H.Docker.Containers.InspectContainerAsync(ww.ID);
            Assert.Equal("host", i.HostConfig.NetworkMode);
            Assert.Equal(["ALL"], i.HostConfig.CapDrop);
            Assert.Equal(["NET_ADMIN"], i.HostConfig.CapAdd);
            Assert.Equal([fx.DockerSocketGid.ToString()], i.HostConfig.GroupAdd);
            Assert.Contains(i.Mounts, m => m.Destination == "/var/run/docker.sock" && !m.RW);
            var data = Assert.Single(i.Mounts, m => m.Destination == "/var/lib/whalewall" && m.Type == "volume" && m.RW);
            // the sandbox holds inside the container too (Docker's default seccomp profile lets landlock through)
            Assert.Contains("sandbox: landlock ABI", logs);
            // not root, CAP_NET_ADMIN only, and the socket read through the run-time group: the
            // ready line above comes after the initial list of containers from that socket
            await AssertLeastPrivilege(ww.ID, socketGroupIsPrimary: false);
            // the new volume took the image's ownership: the daemon's, 0700, and so is its journal
            Assert.Equal("10001 10001 700", Shell.Run("stat", "-c", "%u %g %a", data.Source).Trim());
            Assert.Equal("10001", Shell.Run("stat", "-c", "%u", Path.Combine(data.Source, "whalewall.db")).Trim());

            var web = Assert.Single(await fx.ContainersAsync(("com.docker.compose.project", project), ("com.docker.compose.service", "web")));
            var (ns, ip) = await fx.NsAndIpAsync(web.ID);
            await AssertExampleEnforced(ns, ip, "compose example");
            await AssertUnlabeledUntouched();
        }
        finally
        {
            Cli.Run(fx.Log, fx.Env(), TimeSpan.FromMinutes(2), "docker-compose", [.. compose, "down", "-v", "-t", "5"]);
        }
    });

    [Fact]
    public Task Swarm_stack_runs_whalewall_as_a_global_service_and_it_filters_the_labelled_task_containers() => Run(async () =>
    {
        const string stack = "wws";
        try
        {
            // keep Swarm's own networks inside the test range
            fx.Docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--default-addr-pool", "198.19.64.0/18");
            // without the socket's group the stack file is refused, and nothing is deployed
            var noGid = fx.Env();
            noGid.Remove("DOCKER_GID");
            var (refused, why) = Cli.Run(fx.Log, noGid, TimeSpan.FromMinutes(1), "/usr/bin/docker", "stack", "deploy", "-c", Stack, stack);
            Assert.NotEqual(0, refused);
            Assert.Contains("set DOCKER_GID to the group id of the Docker socket", why);
            Assert.DoesNotContain(stack + "_whalewall", fx.Docker("service", "ls", "--format", "{{.Name}}"));
            Cli.RunOk(fx.Log, fx.Env(), TimeSpan.FromMinutes(3), "/usr/bin/docker", "stack", "deploy", "-c", Stack, stack);

            var mode = fx.Docker("service", "inspect", "-f", "{{if .Spec.Mode.Global}}global{{end}}", stack + "_whalewall").Trim();
            Assert.Equal("global", mode);
            Docker.DotNet.Models.ContainerListResponse? ww = null;
            Assert.True(await E2eProcess.Eventually(async () =>
                (ww = (await fx.ContainersAsync(("com.docker.swarm.service.name", stack + "_whalewall"))).SingleOrDefault()) is not null,
                TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500)), "no whalewall task running:\n" + fx.Docker("service", "ps", "--no-trunc", stack + "_whalewall"));
            var logs = await fx.WaitReadyAsync(ww!.ID, TimeSpan.FromSeconds(60));
            output.WriteLine(Cli.Tail(logs, 10));
            var i = await H.Docker.Containers.InspectContainerAsync(ww.ID);
            Assert.Equal("host", i.HostConfig.NetworkMode);
            // swarm spells capabilities with the CAP_ prefix
            Assert.Equal(["CAP_NET_ADMIN"], (i.HostConfig.CapAdd ?? []).Select(c => c.StartsWith("CAP_") ? c : "CAP_" + c));
            Assert.Contains(i.HostConfig.CapDrop ?? [], c => c is "ALL" or "CAP_ALL");
            Assert.Contains(i.Mounts, m => m.Destination == "/var/run/docker.sock" && !m.RW);
            Assert.Contains("sandbox: landlock ABI", logs);
            // a stack has no group_add: the socket's group is the process's primary group
            Assert.Equal($"10001:{fx.DockerSocketGid}", i.Config.User);
            await AssertLeastPrivilege(ww.ID, socketGroupIsPrimary: true);

            IList<Docker.DotNet.Models.ContainerListResponse> tasks = [];
            Assert.True(await E2eProcess.Eventually(async () =>
                (tasks = await fx.ContainersAsync(("com.docker.swarm.service.name", stack + "_web"))).Count == 2,
                TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500)), "web tasks not running:\n" + fx.Docker("service", "ps", "--no-trunc", stack + "_web"));
            foreach (var t in tasks)
            {
                Assert.Equal("true", t.Labels["whalewall.enabled"]);   // service labels: -> task container labels
                // on the stack's overlay network; its way out is a second interface on docker_gwbridge
                var (ns, ip) = await fx.NsAndIpAsync(t.ID);
                var gateway = (await H.Docker.Networks.InspectNetworkAsync("docker_gwbridge")).Containers[t.ID].IPv4Address.Split('/')[0];
                // the overlay address itself is in no set: traffic from it never crosses the host's
                // hooks (the task is reported unfilterable for its overlay east-west traffic)
                await fx.KernelTable.WaitManaged(gateway);
                Assert.False(fx.KernelTable.IsManaged(ip), $"the overlay address {ip} is in the sets");
                await AssertExampleEnforced(ns, gateway, "swarm task " + t.Names.First());
            }
            await AssertUnlabeledUntouched();
        }
        finally
        {
            Cli.Run(fx.Log, fx.Env(), TimeSpan.FromMinutes(2), "/usr/bin/docker", "stack", "rm", stack);
            await E2eProcess.Eventually(async () => (await fx.ContainersAsync(("com.docker.stack.namespace", stack))).Count == 0, TimeSpan.FromSeconds(30));
            Cli.Run(fx.Log, fx.Env(), TimeSpan.FromMinutes(2), "/usr/bin/docker", "swarm", "leave", "--force");
        }
    });

    [Fact]
    public Task Without_the_socket_group_the_deploy_files_refuse_and_the_image_exits_saying_why() => Run(async () =>
    {
        // the deploy files make the group mandatory
        var env = fx.Env();
        env.Remove("DOCKER_GID");
        var (code, text) = Cli.Run(fx.Log, env, TimeSpan.FromMinutes(1), "docker-compose", "-f", Compose, "-p", "wwn", "config");
        Assert.NotEqual(0, code);
        Assert.Contains("set DOCKER_GID to the group id of the Docker socket", text);
        // (deploy/swarm-stack.yml: in the Swarm test, which has a Swarm to deploy to)

        // the image run without it: permission denied on the socket, exit 4, no retry loop
        (code, text) = RunImage("wwnogroup");
        output.WriteLine(Cli.Tail(text, 10));
        Assert.Equal(4, code);
        Assert.Contains($"permission denied on the Docker socket /var/run/docker.sock (owned by uid 0 gid {fx.DockerSocketGid}, mode 660)", text);
        Assert.Contains("whalewall runs as uid 10001", text);
        Assert.DoesNotContain(WhaleWallDaemon.ReadyLine, text);
        await Task.CompletedTask;
    });

    [Fact]
    public Task With_no_new_privileges_the_file_capability_does_not_take_and_the_image_exits_saying_why() => Run(async () =>
    {
        var (code, text) = RunImage("wwnnp", "--group-add", fx.DockerSocketGid.ToString(), "--security-opt", "no-new-privileges");
        output.WriteLine(Cli.Tail(text, 10));
        Assert.Equal(4, code);
        Assert.Contains("whalewall runs without CAP_NET_ADMIN (CapEff 0000000000000000", text);
        await Task.CompletedTask;
    });
}
