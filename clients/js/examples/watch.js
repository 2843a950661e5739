// Watch one stream through the library: chat, likes, viewers and pinned products.
import { LiveClient } from "../dist/index.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const client = new LiveClient({ urls: params.get("ws").split(","), sessionId: sessionStorage.wrencosSession });
sessionStorage.wrencosSession = client.sessionId; // a reload stays the same viewer

function addChat(m) {
  const li = document.createElement("li");
  li.className = m.isAdmin ? "admin" : "";
  li.dataset.seq = String(m.seq);
  li.textContent = `${m.username || "guest"}: ${m.message}`;
  $("chat").append(li);
  li.scrollIntoView({ block: "end" });
}
function showPinned(products) {
  $("pinned").replaceChildren(...products.map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.name}: ${p.price}`;
    return li;
  }));
}

client.on("state", ({ state }) => { $("status").textContent = state; $("status").dataset.state = state; });
client.on("registered", () => { $("status").textContent = "open"; $("status").dataset.state = "open"; });
client.on("snapshot", ({ streamData }) => {
  $("title").textContent = streamData.title;
  $("viewers").textContent = String(streamData.viewerCount ?? 0);
  $("likes").textContent = String(streamData.likes ?? 0);
  showPinned(streamData.pinnedProducts ?? []);
});
client.on("chatHistory", ({ messages }) => { $("chat").replaceChildren(); messages.forEach(addChat); });
client.on("chat", addChat);
client.on("update", (u) => { $("viewers").textContent = String(u.viewerCount); $("likes").textContent = String(u.likes); });
client.on("pinned", ({ pinnedProducts }) => showPinned(pinnedProducts));
client.on("stopped", () => { $("title").textContent += " (ended)"; });
client.on("error", (e) => { $("problem").textContent = e.message; });

$("like").onclick = () => client.toggleLike().then((ack) => { $("likes").textContent = String(ack.likes); }, (e) => { $("problem").textContent = e.message; });
$("send").onsubmit = (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  $("message").value = "";
  client.chat(text).catch((e) => { $("problem").textContent = e.message; });
};
client.join(params.get("stream")).catch((e) => { $("problem").textContent = e.message; });
