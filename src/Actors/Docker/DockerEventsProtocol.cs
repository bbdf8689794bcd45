namespace WhaleWall.Actors.Docker;

public static class DockerEventsEvents
{
    /// <summary>Published on the event stream when the Docker event stream (re)connects or fails.</summary>
    public sealed record StreamStateChanged(bool Connected, string? Reason);
}
