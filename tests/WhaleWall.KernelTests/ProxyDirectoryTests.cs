using System.Net;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Dns;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>Pure, no kernel: the directory lives here beside the proxy's other tests.</summary>
public sealed class ProxyDirectoryTests
{
    [Fact]
    public void A_container_that_goes_never_removes_the_next_owner_of_its_address()
    {
        var directory = new ProxyDirectory();
        var address = IPAddress.Parse("198.18.128.2");
        directory.Register(address, new ProxyClient("old", DnsPolicy.Nothing, []));
        directory.Register(address, new ProxyClient("new", DnsPolicy.Nothing, []));
        Assert.False(directory.Unregister(address, "old"));
        Assert.Equal("new", directory.Find(address)!.ContainerId);
        Assert.Equal("new", directory.Find(address.MapToIPv6())!.ContainerId); // a dual-stack socket's view
        Assert.True(directory.Unregister(address, "new"));
        Assert.Null(directory.Find(address));
    }
}
