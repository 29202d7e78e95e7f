/**
 * Auto-scroll: the conversation follows new text while the reader is at the
 * bottom, stops as soon as they scroll up (a "jump to the newest" button
 * appears), and follows again once they are back at the bottom.
 */

/** Pixels from the bottom within which the view still counts as "at the bottom". */
const NEAR = 48;

export class Follower {
  /**
   * @param {HTMLElement} scroller  the scrolling container
   * @param {HTMLButtonElement} jump  the "scroll to the newest" button
   */
  constructor(scroller, jump) {
    this.scroller = scroller;
    this.jump = jump;
    this.following = true;
    scroller.addEventListener("scroll", () => {
      this.following = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR;
      jump.hidden = this.following;
    });
    jump.addEventListener("click", () => {
      this.following = true;
      scroller.scrollTo({ top: scroller.scrollHeight, behavior: "smooth" });
    });
  }

  /** Follow again (the reader sent something, or opened another chat). */
  resume() {
    this.following = true;
    this.jump.hidden = true;
  }

  /** After the content changed: keep the bottom in view if following. */
  settle() {
    if (this.following) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
