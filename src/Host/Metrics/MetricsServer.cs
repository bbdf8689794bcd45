using System.Net;
using System.Text;
using Prometheus;
using WhaleWall.Actors.Metrics;

namespace WhaleWall.Host.Metrics;

/// <summary>HTTP on <c>WHALEWALL_METRICS_ADDR</c>: <c>/metrics</c> (Prometheus text; the
/// per-container counters are read from the kernel during the scrape) and <c>/healthz</c>
/// (200 once the table is in place, the Docker event stream is connected and no component —
/// writer, store past its grace, bridge netfilter, sandbox — reports a problem; else 503 with
/// every problem listed).
/// A plain <see cref="HttpListener"/>: the host is a console app without ASP.NET.</summary>
public sealed class MetricsServer : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly DaemonView view;
    private readonly CancellationTokenSource stop = new();
    private readonly TimeProvider clock;
    private Task? loop;

    public MetricsServer(string address, DaemonView view, ContainerCounters counters, TimeProvider? clock = null)
    {
        this.view = view;
        this.clock = clock ?? TimeProvider.System;
        listener.Prefixes.Add(Prefix(address));
        Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(counters.Update);
    }

    /// <summary>":50000" or "0.0.0.0:50000" -> every IPv4 address; "127.0.0.1:9100" -> that one.
    /// IPv6 literals are refused: .NET's HttpListener on Linux does not take them ("Invalid port
    /// in prefix").</summary>
    public static string Prefix(string address)
    {
        var colon = address.LastIndexOf(':');
        if (colon < 0 || !ushort.TryParse(address[(colon + 1)..], out var port) || port == 0)
            throw new ArgumentException($"WHALEWALL_METRICS_ADDR \"{address}\" must be [host]:port, e.g. :50000 or 127.0.0.1:50000");
        var host = address[..colon];
        if (host.Contains(':') || host.Contains('[') || host.Contains('/'))
            throw new ArgumentException($"WHALEWALL_METRICS_ADDR \"{address}\": the host must be empty, an IPv4 address or a name (IPv6 literals are not supported)");
        return $"http://{(host is "" or "0.0.0.0" ? "+" : host)}:{port}/";
    }

    public void Start()
    {
        listener.Start();
        loop = Task.Run(ServeAsync);
    }

    private async Task ServeAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await listener.GetContextAsync(); }
            catch when (stop.IsCancellationRequested || !listener.IsListening) { return; }
            catch (HttpListenerException) { continue; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            switch (context.Request.Url?.AbsolutePath)
            {
                case "/metrics":
                    response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    await Prometheus.Metrics.DefaultRegistry.CollectAndExportAsTextAsync(response.OutputStream);
                    break;
                case "/healthz":
                    var health = view.Current.Health(clock.GetUtcNow());
                    response.StatusCode = health.Healthy ? 200 : 503;
                    await Write(response, HealthText(health));
                    break;
                default:
                    response.StatusCode = 404;
                    await Write(response, "not found: try /metrics or /healthz\n");
                    break;
            }
        }
        catch (Exception e)
        {
            try
            {
                response.StatusCode = 500;
                await Write(response, e.Message + "\n");
            }
            catch { /* the client went away */ }
        }
        finally
        {
            try { response.Close(); } catch { }
        }
    }

    /// <summary>"ok", or "unhealthy:" and every problem on a line of its own; problems still
    /// within their grace follow as notes either way.</summary>
    public static string HealthText(HealthReport health)
    {
        var text = new StringBuilder(health.Healthy ? "ok\n" : "unhealthy:\n");
        foreach (var problem in health.Problems) text.Append("- ").Append(problem).Append('\n');
        foreach (var pending in health.Pending) text.Append("note: ").Append(pending).Append('\n');
        return text.ToString();
    }

    private static Task Write(HttpListenerResponse response, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        response.ContentType ??= "text/plain; charset=utf-8";
        return response.OutputStream.WriteAsync(bytes, 0, bytes.Length);
    }

    public void Dispose()
    {
        stop.Cancel();
        try { listener.Stop(); listener.Close(); } catch { }
        try { loop?.Wait(TimeSpan.FromSeconds(2)); } catch { }
    }
}
