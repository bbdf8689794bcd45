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
    [InlineData("010.0.0.1")] // IPAddress.TryParse: octal, 8.0.0.1
    [InlineData("10.0.0.01")]
    [InlineData("198.019.0.1")]
    [InlineData("0xa.0.0.1")] // hex
    [InlineData("10.0.0.0x1")]
    [InlineData("1.2.3")]
    [InlineData("1.2.3.4.5")]
    [InlineData("198.19.0.256")]
    [InlineData(" 198.19.0.1")]
    [InlineData("+1.2.3.4")]
    [InlineData("::ffff:010.0.0.1")] // IPv4 inside IPv6 holds to the same rule
    [InlineData("::010.0.0.1")]
    [InlineData("64:ff9b::198.019.0.1")]
    [InlineData("[2001:db8::1]")]
    [InlineData("2001:db8::g")]
    [InlineData("198.19.0.0/024")] // prefix lengths: decimal, no leading zero
    [InlineData("198.19.0.0/+24")]
    [InlineData("198.19.0.0/ 24")]
    [InlineData("2001:db8::/064")]
    [InlineData("010.0.0.1/32")]
    [InlineData("198.19.0.1-198.19.0.010")] // both ends of a range
    [InlineData("010.0.0.1-198.19.0.1")]
    public void Invalid_addresses(string text) => Assert.NotNull(AddressSyntax.Parse(text).Error);

    [Theory]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("10.0.0.0", "10.0.0.0")]
    [InlineData("100.64.0.100", "100.64.0.100")]
    [InlineData("::ffff:198.19.0.1", "198.19.0.1")]
    [InlineData("64:ff9b::198.19.0.1", "64:ff9b::c613:1")]
    [InlineData("2001:DB8::A", "2001:db8::a")]
    [InlineData("0.0.0.0/0", "0.0.0.0-255.255.255.255")]
    [InlineData("198.19.0.0/16", "198.19.0.0-198.19.255.255")]
    public void Zero_octets_mapped_forms_and_hex_groups_are_read_as_written(string text, string range) =>
        Assert.Equal(range, AddressSyntax.Parse(text).Range!.ToString());

    [Theory]
    [InlineData("010.0.0.1")]
    [InlineData("::ffff:010.0.0.1")]
    [InlineData("0x7f.0.0.1")]
    public void Address_parser_refuses_octal_and_hex_octets(string text) =>
        Assert.False(WhaleWall.Firewall.Policy.Addresses.TryParse(text, out _));

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
