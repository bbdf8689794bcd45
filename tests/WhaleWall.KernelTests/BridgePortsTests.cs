using System.Diagnostics;
using WhaleWall.Firewall.Kernel.Netlink;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>The rtnetlink adapter that finds a container's port on a bridge, against the real
/// kernel: a host namespace with two bridges and "container" namespaces on them.</summary>
public sealed class BridgePortsTests
{
    [Fact]
    public void Finds_each_containers_port_from_its_namespace_file()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        var other = lab.AddContainer(4, BridgeLab.Bridge1);
        using var ports = new BridgePorts(lab.HostNs);

        foreach (var c in new[] { a, b })
        {
            var port = ports.Find(c.NsPath, BridgeLab.Bridge0);
            Assert.NotNull(port);
            Assert.Equal(c.PortIndex, port.Index);
            Assert.Equal(c.Port, port.Name);
            Assert.Equal(c.EthIndex, port.PeerIndex);
            Assert.Equal(c.Mac, port.PeerMac); // read in the container's namespace from outside
        }
        // on the other bridge, and not on br0
        Assert.Equal(other.PortIndex, ports.Find(other.NsPath, BridgeLab.Bridge1)?.Index);
        Assert.Null(ports.Find(other.NsPath, BridgeLab.Bridge0));
        Assert.Null(ports.Find(a.NsPath, BridgeLab.Bridge1));
        Assert.Null(ports.Find(a.NsPath, "nosuchbridge"));
        Assert.Null(ports.Find("/run/netns/wwb-nosuchns", BridgeLab.Bridge0));
    }

    [Fact]
    public void A_container_on_two_bridges_has_one_port_on_each()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        // a second interface into the same namespace, on br1 (Docker: `network connect`)
        lab.Ip(lab.HostName, "link", "add", "x" + lab.Id, "type", "veth", "peer", "name", "eth1", "netns", a.Name);
        lab.Ip(lab.HostName, "link", "set", "x" + lab.Id, "master", BridgeLab.Bridge1);
        using var ports = new BridgePorts(lab.HostNs);

        Assert.Equal(a.PortIndex, ports.Find(a.NsPath, BridgeLab.Bridge0)?.Index);
        var second = ports.Find(a.NsPath, BridgeLab.Bridge1);
        Assert.NotNull(second);
        Assert.Equal("x" + lab.Id, second.Name);
        Assert.Equal(lab.IfIndex(a.Name, "eth1"), second.PeerIndex);
    }

    [Fact]
    public void Finds_the_port_from_a_pid_in_the_namespace()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        lab.AddContainer(3);
        // `ip netns exec` execs the program: the pid we get lives in a's namespace
        using var sleeper = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", a.Name, "sleep", "30"]))!;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (File.ReadAllText($"/proc/{sleeper.Id}/comm").Trim() != "sleep" && DateTime.UtcNow < deadline) Thread.Sleep(10);
            using var ports = new BridgePorts(lab.HostNs);
            Assert.Equal(a.PortIndex, ports.FindByPid(sleeper.Id, BridgeLab.Bridge0)?.Index);
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
        }
    }

    [Fact]
    public void A_removed_port_is_gone_and_its_index_is_not_reused()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        using var ports = new BridgePorts(lab.HostNs);
        Assert.True(ports.Exists(a.PortIndex, a.Port));
        Assert.False(ports.Exists(a.PortIndex, "someothername"));

        lab.RemoveContainer(a);
        Assert.False(ports.Exists(a.PortIndex, a.Port));

        // a new container with the same address and port name gets a new index
        var again = lab.AddContainer(2);
        Assert.Equal(a.Port, again.Port);
        Assert.NotEqual(a.PortIndex, again.PortIndex);
        Assert.Equal(again.PortIndex, ports.Find(again.NsPath, BridgeLab.Bridge0)?.Index);
    }

    [Fact]
    public void Finds_a_port_by_its_peers_mac_and_reports_a_lookalike()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        lab.AddContainer(4, BridgeLab.Bridge1);
        using var ports = new BridgePorts(lab.HostNs);

        var found = Assert.Single(ports.FindByMac(BridgeLab.Bridge0, a.Mac.ToUpperInvariant()));
        Assert.Equal(a.PortIndex, found.Index);
        Assert.Empty(ports.FindByMac(BridgeLab.Bridge1, a.Mac));
        Assert.Empty(ports.FindByMac(BridgeLab.Bridge0, "02:00:00:00:00:01"));

        // another container takes a's MAC: two candidates, which the caller must refuse;
        // skipping the ports it already knows leaves the new one
        lab.Ip(b.Name, "link", "set", "eth0", "address", a.Mac);
        Assert.Equal(2, ports.FindByMac(BridgeLab.Bridge0, a.Mac).Count);
        Assert.Equal(b.PortIndex, Assert.Single(ports.FindByMac(BridgeLab.Bridge0, a.Mac, new HashSet<int> { a.PortIndex })).Index);
    }

    [Fact]
    public void A_port_is_found_by_mac_before_and_after_its_peer_moves_into_the_container_namespace()
    {
        // Docker's order: both ends created in the host namespace, the host end put on the
        // bridge, `network connect` reported, and only then the container end moved into the
        // sandbox (the lookup must work at the event, and find the same port afterwards)
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var port = "v" + lab.Id;
        const string mac = "02:42:c6:12:1e:44";
        lab.Ip(lab.HostName, "link", "add", port, "type", "veth", "peer", "name", "c" + lab.Id);
        lab.Ip(lab.HostName, "link", "set", "c" + lab.Id, "address", mac);
        lab.Ip(lab.HostName, "link", "set", port, "master", BridgeLab.Bridge0);
        var index = lab.HostIfIndex(port);
        using var ports = new BridgePorts(lab.HostNs);

        Assert.Equal(index, Assert.Single(ports.FindByMac(BridgeLab.Bridge0, mac)).Index);
        Assert.Null(ports.Find(a.NsPath, BridgeLab.Bridge1)); // (no confusion with a's namespace)

        lab.Ip(lab.HostName, "link", "set", "c" + lab.Id, "netns", a.Name);
        Assert.Equal(index, Assert.Single(ports.FindByMac(BridgeLab.Bridge0, mac)).Index);
        Assert.Equal(index, lab.HostIfIndex(port)); // moving the peer leaves the port's index alone
    }

    [Fact]
    public void Waiting_for_a_mac_returns_as_soon_as_the_port_is_ready_and_null_on_timeout()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        using var ports = new BridgePorts(lab.HostNs);
        const string mac = "02:42:c6:12:1e:45";

        var sw = Stopwatch.StartNew();
        Assert.Null(ports.WaitForMac(BridgeLab.Bridge0, mac, TimeSpan.FromMilliseconds(300)));
        Assert.InRange(sw.ElapsedMilliseconds, 250, 3000);

        var waiting = Task.Run(() => ports.WaitForMac(BridgeLab.Bridge0, mac, TimeSpan.FromSeconds(10)));
        Thread.Sleep(300);
        Assert.False(waiting.IsCompleted);
        // Docker's steps: the pair, the host end on the bridge, then the container end's MAC and move
        var port = "v" + lab.Id;
        lab.Ip(lab.HostName, "link", "add", port, "type", "veth", "peer", "name", "c" + lab.Id);
        lab.Ip(lab.HostName, "link", "set", port, "master", BridgeLab.Bridge0);
        var ready = Stopwatch.StartNew();
        lab.Ip(lab.HostName, "link", "set", "c" + lab.Id, "address", mac);
        Assert.True(waiting.Wait(TimeSpan.FromSeconds(5)));
        Assert.Equal(lab.HostIfIndex(port), waiting.Result?.Index);
        Assert.True(ready.ElapsedMilliseconds < 1000, $"took {ready.ElapsedMilliseconds} ms after the MAC was set");
    }
}
