using WhaleWall.Host;
using WhaleWall.Host.Metrics;
using Xunit;

namespace WhaleWall.Tests.Host;

public sealed class MetricsOptionsTests
{
    private static Options From(params (string Key, string Value)[] env) =>
        Options.FromEnvironment(k => env.FirstOrDefault(e => e.Key == k).Value);

    [Fact]
    public void Metrics_listen_on_port_50000_of_every_address_by_default()
    {
        Assert.Equal(":50000", From().MetricsAddr);
        Assert.Equal("http://+:50000/", MetricsServer.Prefix(From().MetricsAddr));
    }

    [Theory]
    [InlineData("127.0.0.1:9100", "http://127.0.0.1:9100/")]
    [InlineData("0.0.0.0:9100", "http://+:9100/")]
    [InlineData("localhost:9100", "http://localhost:9100/")]
    public void Metrics_address_becomes_a_listener_prefix(string address, string prefix) =>
        Assert.Equal(prefix, MetricsServer.Prefix(From(("WHALEWALL_METRICS_ADDR", address)).MetricsAddr));

    [Theory]
    [InlineData("50000")]
    [InlineData("host:")]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("[::1]:9100")] // HttpListener on Linux refuses IPv6 literals
    [InlineData("[::]:9100")]
    public void A_bad_metrics_address_is_refused(string address) =>
        Assert.Throws<ArgumentException>(() => MetricsServer.Prefix(address));

    [Theory]
    [InlineData(null, false)]
    [InlineData("true", true)]
    [InlineData("1", true)]
    [InlineData("false", false)]
    public void Drop_logging_is_opt_in(string? value, bool expected) =>
        Assert.Equal(expected, (value is null ? From() : From(("WHALEWALL_LOG_DROPS", value))).LogDrops);
}
