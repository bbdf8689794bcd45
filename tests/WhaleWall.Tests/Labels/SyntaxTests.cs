using WhaleWall.Firewall.Labels;
using Xunit;

namespace WhaleWall.Tests.Labels;

public class SyntaxTests
{
    [Theory]
    [InlineData("198.19.0.10", "198.19.0.10")]
    [InlineData("198.19.0.0/24", "198.19.0.0-198.19.0.255")]
    [InlineData("0.0.0.0/0", "0.0.0.0-255.255.255.255")]
    [InlineData("198.19.0.1-198.19.0.9", "198.19.0.1-198.19.0.9")]
    [InlineData("2001:db8::/126", "2001:db8::-2001:db8::3")]
    [InlineData("2001:db8::1", "2001:db8::1")]
    public void Valid_addresses(string text, string range) =>
        Assert.Equal(range, AddressSyntax.Parse(text).Range!.ToString());

    [Theory]
    [InlineData("example.com")]
    [InlineData("198.19.0.300")]
    [InlineData("198.19.0.0/33")]
    [InlineData("198.19.0.9-198.19.0.1")]
    [InlineData("198.19.0.1-2001:db8::1")]
    [InlineData("198.19.0.0/24-198.19.1.0")]
    [InlineData("fe80::1%eth0")]
    [InlineData("10")]
    [InlineData("")]
    public void Invalid_addresses(string text) => Assert.NotNull(AddressSyntax.Parse(text).Error);

    [Theory]
    [InlineData("80", 80, 80)]
    [InlineData("1000-2000", 1000, 2000)]
    [InlineData("65535", 65535, 65535)]
    [InlineData("5-5", 5, 5)]
    public void Valid_ports(string text, int lo, int hi)
    {
        var r = PortSyntax.Parse(text).Range!;
        Assert.Equal((lo, hi), (r.Lo, r.Hi));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("-1")]
    [InlineData("+80")]
    [InlineData("80-")]
    [InlineData("http")]
    public void Invalid_ports(string text) => Assert.NotNull(PortSyntax.Parse(text).Error);
}
