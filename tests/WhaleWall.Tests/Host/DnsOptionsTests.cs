using WhaleWall.Host;
using Xunit;

namespace WhaleWall.Tests.Host;

public class DnsOptionsTests
{
    private static Options With(string grace) =>
        Options.FromEnvironment(k => k == "WHALEWALL_DNS_GRACE" ? grace : null);

    /// <summary>The kernel's element timeouts are whole seconds rounded down: with less than a
    /// second of grace a learned or resolved address could lapse before the TTL the container got.</summary>
    [Fact]
    public void A_dns_grace_under_one_second_is_refused()
    {
        Assert.Contains("at least 1 second", Assert.Throws<ArgumentException>(() => With("0")).Message);
        Assert.Throws<ArgumentException>(() => With("0.5"));
        Assert.Equal(TimeSpan.FromSeconds(1), With("1").Dns!.Grace);
    }
}
