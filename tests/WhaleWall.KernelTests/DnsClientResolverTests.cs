using System.Diagnostics;
using System.Net;
using WhaleWall.Actors.Hostnames;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>The daemon's DNS adapter (<see cref="DnsClientResolver"/>, DnsClient) against a real
/// DNS server on loopback.</summary>
public sealed class DnsClientResolverTests
{
    [Fact]
    public async Task A_lost_answer_costs_one_lookup_timeout_so_a_renewal_still_lands_before_its_address_lapses()
    {
        using var server = TestDnsServer.Start("/proc/self/ns/net", "127.0.0.1", 0, withTcp: false);
        server.Set("lost.test.example", 1, "198.19.0.10");
        var answered = 0;
        // the first answer never leaves (a lost datagram); the retry's does
        server.BeforeAnswer = (_, _, _) => Interlocked.Increment(ref answered) == 1 ? throw new IOException("lost") : Task.CompletedTask;
        // the end-to-end tests' settings: a 1 s TTL, asked again after 0.5 s, 2 s grace: 2.5 s to renew
        var settings = new DnsSettings(TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), TimeSpan.FromSeconds(2));
        var resolver = DnsClientResolver.Create([server.Endpoint], settings.LookupTimeout);

        var watch = Stopwatch.StartNew();
        var answer = await resolver.ResolveAsync("lost.test.example", CancellationToken.None);
        watch.Stop();

        Assert.Null(answer.Error);
        Assert.Contains(answer.Addresses, a => a.Address.Equals(IPAddress.Parse("198.19.0.10")));
        Assert.True(answered >= 3, $"{answered} answers: the lost one was not asked for again");
        // a 2 s wait for the lost answer left half a second of the 2.5 s
        Assert.True(watch.Elapsed < 2 * settings.LookupTimeout,
            $"answered after {watch.Elapsed.TotalMilliseconds:F0} ms; the lookup timeout is {settings.LookupTimeout.TotalMilliseconds:F0} ms");
    }
}
