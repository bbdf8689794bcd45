using System.Collections.Immutable;
using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace WhaleWall.Actors.Hostnames;

/// <summary>Adapter from DnsClient to <see cref="IDnsResolver"/>: asks A and AAAA of the
/// configured servers (no cache of its own: TTLs are WhaleWall's business).</summary>
public sealed class DnsClientResolver(LookupClient client) : IDnsResolver
{
    /// <param name="timeout">one query's wait for its answer (<see cref="DnsSettings.LookupTimeout"/>)</param>
    public static DnsClientResolver Create(IReadOnlyList<IPEndPoint>? servers, TimeSpan timeout)
    {
        var options = servers is { Count: > 0 } ? new LookupClientOptions(servers.ToArray()) : new LookupClientOptions();
        options.UseCache = false;
        options.Timeout = timeout;
        options.Retries = 1;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        return new DnsClientResolver(new LookupClient(options));
    }

    public async Task<DnsAnswer> ResolveAsync(string name, CancellationToken ct)
    {
        try
        {
            var a = client.QueryAsync(name, QueryType.A, cancellationToken: ct);
            var aaaa = client.QueryAsync(name, QueryType.AAAA, cancellationToken: ct);
            var responses = await Task.WhenAll(a, aaaa);
            var addresses = responses
                .SelectMany(r => r.Answers)
                .Select(r => r switch
                {
                    ARecord v4 => (v4.Address, TimeSpan.FromSeconds(v4.TimeToLive)),
                    AaaaRecord v6 => (v6.Address, TimeSpan.FromSeconds(v6.TimeToLive)),
                    _ => ((IPAddress, TimeSpan)?)null,
                })
                .OfType<(IPAddress, TimeSpan)>()
                .ToImmutableArray();
            var error = responses.FirstOrDefault(r => r.HasError)?.ErrorMessage;
            return addresses.IsEmpty ? DnsAnswer.Failed(error ?? "no A or AAAA records") : new DnsAnswer(addresses, null);
        }
        catch (DnsResponseException e) { return DnsAnswer.Failed(e.Message); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return DnsAnswer.Failed("timeout"); }
    }
}
