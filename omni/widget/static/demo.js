// The demo shop's sign-in: the shop's server computed user_hash (see the README) and put it on the button.
(function () {
  "use strict";
  var button = document.getElementById("sign-in");
  var status = document.getElementById("signed-in");
  if (!button) return;
  button.addEventListener("click", function () {
    var customer = {
      account_id: button.dataset.accountId,
      email: button.dataset.email,
      name: button.dataset.name,
      user_hash: button.dataset.userHash,
    };
    window.omniChat.identify(customer).then(
      function (result) {
        status.textContent = result.verified ? "Signed in as " + customer.name : "Not verified";
        button.hidden = true;
      },
      function (error) {
        status.textContent = "Sign-in refused: " + error.message;
      }
    );
  });
})();
